"""Certificate lifecycle figures (issue 3): cursor walk of the inventory and local-CA issuance end to end.

1. Cursor walk: N certificates (bulk INSERT), then `GET /api/v1/certificates?page_size=100` page after
   page through the whole app in-process (auth and middleware included); p50/p95 per page.
   Target: p50 < 20 ms per page on 100,000 certificates in PostgreSQL.
2. Issuance: M certificates created through `POST /api/v1/certificates` (server key generation, ECDSA
   P-256), then the issuance processor signs them with the local CA until all are Active; the figure is
   certificates per second from the first create to the last Active. Target ≥ 200/s. The raw
   `cryptography` rate (key generation + CSR + signing a leaf, the same work) is measured in the same run
   and the ratio printed, so the overhead of certctl itself is visible. With `--worker-process` the clock
   starts once the `certctl worker` (and, with `--served`, `certctl server`) processes are up, idle after
   their start-up work (the worker's first renewal scan reads the whole inventory) and warmed by 20
   creates; before, their start-up was inside the measured time. The time until the last create was
   answered is printed too, so API and issuance can be told apart. `--raw-client` replaces httpx (about
   2 ms of CPU per request on the same two cores) by a minimal HTTP/1.1 keep-alive client.

    .venv/bin/python bench/lifecycle_bench.py                     # temporary SQLite file
    CERTCTL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/certctl_bench_x \\
        .venv/bin/python bench/lifecycle_bench.py --certificates 100000 --issue 1000

The PostgreSQL database must exist and be empty; it is migrated here and left filled (drop it after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, insert, select

from certctl.app import create_app
from certctl.bootstrap import prepare
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.config import KeygenMode, Settings
from certctl.context import AppContext
from certctl.db import migrate
from certctl.db.engine import make_engine
from certctl.jobs.service import JobQueue
from certctl.org.models import Owner, Team

API_KEY = "bench-admin-key-0123456789"
ENCRYPTION_KEY = "bench-encryption-passphrase-0123456789abcdef"
BATCH = 5_000
PAGE_TARGET_MS, ISSUANCE_TARGET = 20.0, 200.0
WARM_UP = 20  # creates through the whole path before the clock starts


@dataclass(frozen=True, slots=True)
class Timing:
    active: int  # certificates Active at the end
    started: float  # perf_counter when the first timed create was sent
    answered: float  # when the last create was answered
    finished: float  # when the last certificate was Active
    cpu_ms: dict[str, float] | None = None  # CPU per certificate by process kind, --worker-process only


def fill(context: AppContext, count: int) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(Team(id="t-bench", name="bench", created_at=now, updated_at=now))
        session.flush()
        session.add(
            Owner(
                id="o-bench", name="Bench", email="bench@example.com", team_id="t-bench", created_at=now, updated_at=now
            )
        )
    rows = [
        {
            "id": f"mc-bench-{i:07d}",
            "name": f"bench-{i:07d}",
            "common_name": f"host{i}.bench.example.com",
            "sans": [],
            "environment": "production",
            "owner_id": "o-bench",
            "team_id": "t-bench",
            "issuer_id": "iss-local",
            "renewal_policy_id": "rp-default",
            "status": CertificateStatus.ACTIVE,
            "expires_at": now + timedelta(days=31 + i % 300),
            "tags": {},
            "source": "API",
            "created_at": now - timedelta(seconds=count - i),
            "updated_at": now,
        }
        for i in range(count)
    ]
    for start in range(0, count, BATCH):
        with context.db.begin() as session:
            session.execute(insert(ManagedCertificate), rows[start : start + BATCH])


async def walk(app: object, pages: int) -> list[float]:
    timings: list[float] = []
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://bench", headers={"Authorization": f"Bearer {API_KEY}"}
    ) as client:
        params: dict[str, str | int] = {"page_size": 100}
        for _ in range(pages):
            started = time.perf_counter()
            response = await client.get("/api/v1/certificates", params=params)
            timings.append((time.perf_counter() - started) * 1000)
            body = response.json()
            if response.status_code != 200 or "next_cursor" not in body:
                break
            params["cursor"] = body["next_cursor"]
    return timings


def create_body(prefix: str, i: int) -> dict[str, str]:
    return {
        "name": f"{prefix}-{i}",
        "common_name": f"{prefix}{i}.bench.example.com",
        "owner_id": "o-bench",
        "team_id": "t-bench",
        "issuer_id": "iss-local",
        "renewal_policy_id": "rp-default",
    }


async def create_many_raw(url: str, count: int, prefix: str = "issue", clients: int = 1) -> None:
    """The same creates over HTTPS with a minimal HTTP/1.1 keep-alive client (one connection per client):
    httpx costs about 2 ms of CPU per request, which on two shared cores is CPU the server does not get."""
    host, port = url.removeprefix("https://").split(":")
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # self-signed bootstrap pair; measuring only

    async def one_client(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port), ssl=tls)
        try:
            for i in range(offset, count, clients):
                body = json.dumps(create_body(prefix, i)).encode()
                writer.write(
                    b"POST /api/v1/certificates HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                    + API_KEY.encode()
                    + b"\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                answer = await reader.readexactly(length)
                if status != 201:
                    raise SystemExit(f"create failed: {status} {answer.decode(errors='replace')}")
        finally:
            writer.close()

    await asyncio.gather(*(one_client(offset) for offset in range(clients)))


async def create_many(
    app: object | None, count: int, prefix: str = "issue", clients: int = 1, url: str | None = None
) -> None:
    """`count` creates from `clients` concurrent API clients (each its own sequence of requests): in-process
    through the ASGI app, or over HTTPS to a running server at `url`."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if url is None:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://bench", headers=headers)  # type: ignore[arg-type]
    else:  # the bootstrap certificate is self-signed: this client only measures, it does not pin
        http = httpx.AsyncClient(base_url=url, headers=headers, verify=False, timeout=60)  # noqa: S501
    async with http as client:

        async def one_client(offset: int) -> None:
            for i in range(offset, count, clients):
                response = await client.post("/api/v1/certificates", json=create_body(prefix, i))
                if response.status_code != 201:
                    raise SystemExit(f"create failed: {response.status_code} {response.text}")

        await asyncio.gather(*(one_client(offset) for offset in range(clients)))


def count_active(context: AppContext, pattern: str = "issue-%") -> int:
    with context.db.begin() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    ManagedCertificate.name.like(pattern), ManagedCertificate.status == CertificateStatus.ACTIVE
                )
            )
            or 0
        )


def wait_active(context: AppContext, pattern: str, count: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while (active := count_active(context, pattern)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return active


def wait_idle(processes: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    """Until none of the processes used more than 20 ms of CPU in half a second (start-up work done)."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        used = sum(process_cpu_seconds(p.pid) for p in processes)
        if 0 <= used - last < 0.02:
            return
        last = used
        time.sleep(0.5)


def postgres_cpu_seconds(url: str) -> float:
    """CPU of the PostgreSQL backends serving the bench database (local server only; a backend that exits
    takes its CPU with it, so a pool that closes connections is undercounted)."""
    database = url.rsplit("/", 1)[-1].encode()
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"postgres: ") and database in cmdline.read_bytes():
                fields = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def client_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (Linux /proc), in seconds."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def issue_in_process(context: AppContext, app: object, args: argparse.Namespace) -> Timing:
    """As in `certctl server`: API clients create while the job-processor loop keeps draining the queue."""
    queue = JobQueue(context.db, context.clock, on_terminal_failure=mark_certificate_failed)
    processor = IssuanceProcessor(context.db, context.clock, context.cipher, context.connectors, queue, batch=50)
    creating = threading.Event()
    creating.set()

    def process_until_drained() -> None:
        while True:
            summary = processor.run(context.clock.now())
            if not creating.is_set() and summary.claimed == 0:
                return
            if summary.claimed == 0:
                time.sleep(0.01)

    started = time.perf_counter()
    worker = threading.Thread(target=process_until_drained)
    worker.start()
    asyncio.run(create_many(app, args.issue, clients=args.clients))
    answered = time.perf_counter()
    creating.clear()
    worker.join()
    return Timing(count_active(context), started, answered, time.perf_counter())


def issue_with_worker_process(context: AppContext, app: object, settings: Settings, args: argparse.Namespace) -> Timing:
    """The scale-out topology: a `certctl worker` process issues; the API runs in this process or, with
    `--served`, as a real `certctl server` process (HTTPS) while this process is only the load client.

    The clock starts once the processes are up and idle: the worker's first pass of its loops (a renewal
    scan of the whole inventory) and the server's start-up are not issuance, and a few warm-up creates
    have gone through both."""
    env = os.environ | {
        "CERTCTL_DATABASE_URL": settings.sqlalchemy_url,
        "CERTCTL_DATA_DIR": str(settings.data_dir),
        "CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CERTCTL_KEYGEN_MODE": "server",
        "CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL": "1s",
        "CERTCTL_RENEWAL_CONCURRENCY": "50",
        "CERTCTL_LOG_LEVEL": "warn",
    }
    server: subprocess.Popen[bytes] | None = None
    url: str | None = None
    if args.served:
        port = free_port()
        server_env = env | {
            "CERTCTL_SERVER_PORT": str(port),
            "CERTCTL_API_KEYS_NAMED": f"bench:{API_KEY}:admin",
            "CERTCTL_SCHEDULER_ENABLED": "false",
            "CERTCTL_RATE_LIMIT_ENABLED": "false",
        }
        workers = ["--workers", str(args.server_workers)] if args.server_workers > 1 else []
        server = subprocess.Popen(  # noqa: S603 (our own interpreter and an integer option)
            [sys.executable, "-m", "certctl", "server", *workers],
            env=server_env,
            stdout=subprocess.DEVNULL,
        )
        url = f"https://127.0.0.1:{port}"
        wait_healthy(url)
    worker = subprocess.Popen([sys.executable, "-m", "certctl", "worker"], env=env)

    def create(prefix: str, count: int) -> None:
        if url is not None and args.raw_client:
            asyncio.run(create_many_raw(url, count, prefix=prefix, clients=args.clients))
        else:
            asyncio.run(create_many(None if url else app, count, prefix=prefix, clients=args.clients, url=url))

    try:
        wait_idle([p for p in (server, worker) if p is not None])
        create("warm", WARM_UP)
        wait_active(context, "warm-%", WARM_UP)
        processes = {"server": server, "worker": worker}
        before = {name: process_cpu_seconds(p.pid) for name, p in processes.items() if p is not None}
        before |= {"postgres": postgres_cpu_seconds(settings.sqlalchemy_url), "client": client_cpu_seconds()}
        started = time.perf_counter()
        create("issue", args.issue)
        answered = time.perf_counter()
        active = wait_active(context, "issue-%", args.issue)
        finished = time.perf_counter()
        after = {name: process_cpu_seconds(p.pid) for name, p in processes.items() if p is not None}
        after |= {"postgres": postgres_cpu_seconds(settings.sqlalchemy_url), "client": client_cpu_seconds()}
        cpu = {name: (after[name] - before[name]) / max(active, 1) * 1000 for name in before}
        return Timing(active, started, answered, finished, cpu)
    finally:
        for process in (worker, server):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", verify=False, timeout=2).status_code == 200:  # noqa: S501
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"certctl server at {url} did not become healthy")


def raw_crypto_rate(count: int) -> float:
    """Key + CSR + leaf signature with cryptography alone: the floor of what issuance costs."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"h{i}.example.com")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca_name)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=90))
            .sign(ca_key, hashes.SHA256())
        )
    return count / (time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--issue", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients creating certificates")
    parser.add_argument(
        "--served",
        action="store_true",
        help="with --worker-process: the API as a real `certctl server` process over HTTPS too",
    )
    parser.add_argument(
        "--raw-client",
        action="store_true",
        help="with --served: a minimal HTTP/1.1 client instead of httpx (less client CPU on a small machine)",
    )
    parser.add_argument(
        "--server-workers", type=int, default=1, help="with --served: `certctl server --workers N` processes"
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="issue in a separate `certctl worker` process (PostgreSQL), as in a scale-out",
    )
    args = parser.parse_args()
    url = os.environ.get("CERTCTL_BENCH_DATABASE_URL")
    workdir = Path(tempfile.mkdtemp(prefix="certctl-bench-"))
    try:
        settings = Settings(
            data_dir=workdir,
            database_url=url or f"sqlite:///{workdir / 'bench.db'}",
            api_keys_named=f"bench:{API_KEY}:admin",
            config_encryption_key=ENCRYPTION_KEY,
            rate_limit_enabled=False,
            keygen_mode=KeygenMode.SERVER,
        )
        migrate.upgrade(make_engine(settings.sqlalchemy_url))
        context = prepare(settings, run_migrations=False)
        app = create_app(context)
        engine_name = context.db.dialect
        started = time.perf_counter()
        fill(context, args.certificates)
        print(
            f"database: {engine_name}; filled {args.certificates} certificates in {time.perf_counter() - started:.1f} s"
        )
        asyncio.run(walk(app, 5))  # warm-up
        pages = asyncio.run(walk(app, args.pages))
        print(
            f"cursor walk, page_size=100: {len(pages)} pages, p50 {statistics.median(pages):.1f} ms, "
            f"p95 {percentile(pages, 0.95):.1f} ms (target p50 < {PAGE_TARGET_MS:.0f} ms)"
        )

        context.connectors.get("iss-local")  # the CA is made once, before the clock starts
        load_before = os.getloadavg()  # the machine may be shared: figures mean little under other load
        if args.worker_process:
            timing = issue_with_worker_process(context, app, settings, args)
        else:
            timing = issue_in_process(context, app, args)
        active, elapsed = timing.active, timing.finished - timing.started
        rate = active / elapsed
        raw = raw_crypto_rate(min(args.issue, 2000))
        topology = "one process"
        if args.worker_process:
            server = (
                f"`certctl server --workers {args.server_workers}`" if args.server_workers > 1 else "`certctl server`"
            )
            topology = f"{server} + `certctl worker` processes" if args.served else "API here + `certctl worker`"
            if args.served:
                topology += ", raw HTTP/1.1 client" if args.raw_client else ", httpx client"
        print(
            f"issuance end to end (API create → Active, server keygen, ECDSA P-256, "
            f"{args.clients} clients, {topology}): {active}/{args.issue} "
            f"in {elapsed:.2f} s = {rate:.0f} certificates/s (target ≥ {ISSUANCE_TARGET:.0f}/s)"
        )
        api_seconds = timing.answered - timing.started
        print(
            f"  of which: {args.issue} creates answered in {api_seconds:.2f} s ({args.issue / api_seconds:.0f}/s), "
            f"the last certificate Active {elapsed - api_seconds:.2f} s later"
        )
        if timing.cpu_ms:
            spent = ", ".join(f"{name} {ms:.2f}" for name, ms in timing.cpu_ms.items())
            print(f"  CPU per certificate (ms): {spent}; total {sum(timing.cpu_ms.values()):.2f}")
        print(f"raw cryptography (key + CSR + sign): {raw:.0f}/s; certctl reaches {rate / raw:.1%} of it")
        print(f"machine load (1-minute average): {load_before[0]:.2f} before issuance, {os.getloadavg()[0]:.2f} after")
        context.db.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
