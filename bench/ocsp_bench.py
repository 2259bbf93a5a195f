"""OCSP responder throughput from cache (issue 6: >= 3,000 responses/s for one server process).

1. Seeds an issuer (the local CA `iss-local`) with `--certs` issued certificates, `--revoked` of them
   revoked, in a fresh database (a temporary SQLite file, or CERTCTL_BENCH_DATABASE_URL).
2. Starts one real `certctl server` process (HTTPS API plus the plain-HTTP distribution listener,
   CERTCTL_PKI_HTTP_PORT; scheduler off so its loops do not compete for the core). The per-IP rate limit
   is set far above the offered load, so its bookkeeping is measured but never refuses.
3. Warms the cache: one nonce-less request per certificate (each one a miss: DB read + signature).
4. Load generator in a separate process: `--connections` keep-alive HTTP/1.1 connections over raw asyncio
   streams, each with `--pipeline` POSTs (DER OCSPRequest, SHA-1 CertID, no nonce) in flight, picked at
   random over the seeded serials, for `--duration` seconds. Prints responses/s, p50/p99 latency (from a
   request's write to its response's last byte; pipelining queues, so latency includes queueing), and
   checks every response is a successful OCSP answer of the expected status.
5. Raw cryptography OCSP signing rate in this process (ECDSA P-256, the responder's key type), and the
   ratio of the served rate to it: the cache is what lets the server exceed what signing alone allows.

    .venv/bin/python bench/ocsp_bench.py [--certs 10000] [--revoked 1000] [--duration 10]
        [--connections 8] [--pipeline 16] [--method post|get]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import multiprocessing
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lifecycle_bench import free_port, percentile, process_cpu_seconds, wait_healthy

from certctl.bootstrap import prepare
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.config import Settings
from certctl.issuers.models import Issuer
from certctl.org.models import Owner, Team
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import random_serial
from certctl.revocation.models import CertificateRevocation

ISSUER = "iss-local"
ENCRYPTION_KEY = "ocsp-bench-encryption-passphrase-0123456789"
API_KEY = "ocsp-bench-admin-key-0123456789"
SHA1 = hashes.SHA1()  # noqa: S303 - CertID hash, as clients send it


# -- seeding ----------------------------------------------------------------------------------------------------


def seed(settings: Settings, certs: int, revoked: int) -> tuple[LocalCA, list[int], set[int]]:
    context = prepare(settings)
    try:
        ca = context.connectors.get(ISSUER)
        assert isinstance(ca, LocalCA)
        now = datetime.now(UTC)
        serials = [random_serial() for _ in range(certs)]
        revoked_serials = set(serials[:revoked])
        with context.db.begin() as session:
            session.add(Team(id="t-bench", name="bench", created_at=now, updated_at=now))
            session.flush()
            session.add(Owner(id="o-bench", name="bench", team_id="t-bench", created_at=now, updated_at=now))
            session.flush()
            common = {
                "owner_id": "o-bench",
                "team_id": "t-bench",
                "issuer_id": ISSUER,
                "renewal_policy_id": "rp-default",
            }
            session.execute(
                insert(ManagedCertificate),
                [
                    {
                        "id": f"mc-{i}",
                        "name": f"bench-{i}",
                        "common_name": f"bench-{i}.example.com",
                        "status": CertificateStatus.REVOKED if serial in revoked_serials else CertificateStatus.ACTIVE,
                        "created_at": now,
                        "updated_at": now,
                    }
                    | common
                    for i, serial in enumerate(serials)
                ],
            )
            session.execute(
                insert(CertificateVersion),
                [
                    {
                        "id": f"cv-{i}",
                        "certificate_id": f"mc-{i}",
                        "serial_number": format(serial, "x"),
                        "not_before": now,
                        "not_after": now + timedelta(days=90),
                        "fingerprint_sha256": secrets.token_hex(32),
                        "pem_chain": "",
                        "created_at": now,
                    }
                    for i, serial in enumerate(serials)
                ],
            )
            if revoked_serials:
                session.execute(
                    insert(CertificateRevocation),
                    [
                        {
                            "id": f"rev-{i}",
                            "certificate_id": f"mc-{i}",
                            "issuer_id": ISSUER,
                            "serial_number": format(serial, "x"),
                            "reason": "keyCompromise",
                            "revoked_by": "bench",
                            "revoked_at": now,
                            "not_after": now + timedelta(days=90),
                        }
                        for i, serial in enumerate(serials)
                        if serial in revoked_serials
                    ],
                )
                session.execute(update(Issuer).where(Issuer.id == ISSUER).values(revocation_revision=1))
        return ca, serials, revoked_serials
    finally:
        context.close()


def build_requests(ca: LocalCA, serials: list[int]) -> list[bytes]:
    """Nonce-less single requests with a SHA-1 CertID, as `openssl ocsp -no_nonce` and browsers send."""
    template = ocsp.OCSPRequestBuilder().add_certificate(ca.certificate, ca.certificate, SHA1).build()
    name_hash, key_hash = template.issuer_name_hash, template.issuer_key_hash
    return [
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(name_hash, key_hash, serial, SHA1)
        .build()
        .public_bytes(serialization.Encoding.DER)
        for serial in serials
    ]


# -- load generator (runs in its own process) --------------------------------------------------------------------


def http_requests(method: str, host: str, port: int, issuer: str, ders: list[bytes]) -> list[bytes]:
    path = f"/.well-known/pki/ocsp/{issuer}"
    out = []
    for der in ders:
        if method == "get":
            segment = base64.b64encode(der).decode().replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
            out.append(f"GET {path}/{segment} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        else:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/ocsp-request\r\n"
                f"Content-Length: {len(der)}\r\n\r\n"
            )
            out.append(head.encode() + der)
    return out


class _PipelinedClient(asyncio.Protocol):
    """One keep-alive connection with `pipeline` requests in flight; responses parsed with bytes.find only
    (a StreamReader costs several awaits per response and made the generator the bottleneck)."""

    def __init__(self, requests: list[tuple[bytes, int]], pipeline: int, stop_at: float, stats: dict[str, Any]) -> None:
        self._requests, self._pipeline, self._stop_at, self._stats = requests, pipeline, stop_at, stats
        self._rng = random.Random()
        self._in_flight: collections.deque[tuple[float, int]] = collections.deque()
        self._buffer = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        transport.write(b"".join(self._next() for _ in range(self._pipeline)))

    def _next(self) -> bytes:
        raw, expected = self._requests[self._rng.randrange(len(self._requests))]
        self._in_flight.append((time.perf_counter(), expected))
        return raw

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        outgoing: list[bytes] = []
        now = time.perf_counter()
        stats = self._stats
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            at = buffer.find(b"content-length:", 0, head_end)
            if at < 0:
                at = buffer.find(b"Content-Length:", 0, head_end)
            line_end = buffer.find(b"\r\n", at)
            length = int(buffer[at + 15 : line_end])
            body_start = head_end + 4
            if len(buffer) < body_start + length:
                break
            status_ok = buffer.startswith(b"HTTP/1.1 200")
            body = buffer[body_start : body_start + length]
            buffer = buffer[body_start + length :]
            sent_at, expected = self._in_flight.popleft()
            stats["latencies"].append(now - sent_at)
            stats["answers"] += 1
            if not status_ok or (stats["answers"] % 97 == 0 and _status(body) != expected):
                stats["errors"].append(f"HTTP ok={status_ok}, OCSP status {_status(body)} (expected {expected})")
            if now < self._stop_at:
                outgoing.append(self._next())
        self._buffer = buffer
        if outgoing and self.transport is not None:
            self.transport.write(b"".join(outgoing))
        if not self._in_flight and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._in_flight:
            self._stats["errors"].append(f"connection lost with {len(self._in_flight)} in flight: {exc}")
        if not self.done.done():
            self.done.set_result(None)


def _status(body: bytes) -> int:
    parsed = ocsp.load_der_ocsp_response(body)
    if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return -int(parsed.response_status.value)
    return {ocsp.OCSPCertStatus.GOOD: 0, ocsp.OCSPCertStatus.REVOKED: 1}.get(parsed.certificate_status, 2)


def load_process(config: dict[str, Any], results: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def run() -> dict[str, Any]:
        requests = list(zip(config["raw"], config["expected"], strict=True))
        stats: dict[str, Any] = {"answers": 0, "latencies": [], "errors": []}
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        stop_at = started + config["duration"]
        clients = []
        for _ in range(config["connections"]):
            _, client = await loop.create_connection(
                lambda: _PipelinedClient(requests, config["pipeline"], stop_at, stats), config["host"], config["port"]
            )
            clients.append(client)
        await asyncio.gather(*(client.done for client in clients))
        elapsed = time.perf_counter() - started
        return {
            "answers": stats["answers"],
            "elapsed": elapsed,
            "latencies": stats["latencies"],
            "errors": stats["errors"][:5],
        }

    try:
        results.put(asyncio.run(run()))
    except BaseException as exc:  # report it: a silent child would leave the parent waiting
        results.put({"failed": f"{type(exc).__name__}: {exc}"})


# -- raw signing reference -------------------------------------------------------------------------------------------


def raw_signing_rate(seconds: float = 2.0) -> float:
    """Good answers built and signed with cryptography alone (ECDSA P-256 responder key), per second."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench responder")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            builder = (
                ocsp.OCSPResponseBuilder()
                .add_response_by_hash(
                    b"\x01" * 20, b"\x02" * 20, random_serial(), SHA1, ocsp.OCSPCertStatus.GOOD, now, now, None, None
                )
                .responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
                .certificates([cert])
            )
            builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        count += 100
    return count / (time.perf_counter() - started)


# -- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certs", type=int, default=10_000)
    parser.add_argument("--revoked", type=int, default=1_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--method", choices=["post", "get"], default="post")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ocsp-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        database_url = os.environ.get("CERTCTL_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/certctl.db"
        env = os.environ | {
            "CERTCTL_DATABASE_URL": database_url,
            "CERTCTL_DATA_DIR": str(data_dir),
            "CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "CERTCTL_API_KEYS_NAMED": f"bench:{API_KEY}:admin",
            "CERTCTL_SERVER_HOST": "127.0.0.1",
            "CERTCTL_SCHEDULER_ENABLED": "false",
            "CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN": str(10**9),
            "CERTCTL_LOG_LEVEL": "warn",
        }
        settings = Settings(database_url=database_url, data_dir=data_dir, config_encryption_key=ENCRYPTION_KEY)
        started = time.perf_counter()
        ca, serials, revoked = seed(settings, args.certs, args.revoked)
        print(f"seeded {len(serials)} certificates ({len(revoked)} revoked) in {time.perf_counter() - started:.1f} s")

        api_port, pki_port = free_port(), free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "certctl", "server"],
            env=env | {"CERTCTL_SERVER_PORT": str(api_port), "CERTCTL_PKI_HTTP_PORT": str(pki_port)},
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_healthy(f"https://127.0.0.1:{api_port}")
            ders = build_requests(ca, serials)
            expected = [1 if serial in revoked else 0 for serial in serials]
            url = f"http://127.0.0.1:{pki_port}/.well-known/pki/ocsp/{ISSUER}"
            started = time.perf_counter()
            with httpx.Client(timeout=30) as client:
                for der in ders:  # each a miss: status read + signature, then cached
                    response = client.post(url, content=der, headers={"content-type": "application/ocsp-request"})
                    response.raise_for_status()
            warm = time.perf_counter() - started
            print(
                f"warmed the cache: {len(ders)} misses in {warm:.1f} s "
                f"({len(ders) / warm:,.0f}/s, sequential, HTTP client included)"
            )

            config = {
                "host": "127.0.0.1",
                "port": pki_port,
                "raw": http_requests(args.method, "127.0.0.1", pki_port, ISSUER, ders),
                "expected": expected,
                "duration": args.duration,
                "connections": args.connections,
                "pipeline": args.pipeline,
            }
            results: Any = multiprocessing.get_context("fork").Queue()
            load = multiprocessing.get_context("fork").Process(target=load_process, args=(config, results))
            cpu_before = process_cpu_seconds(server.pid)
            load.start()
            outcome = results.get(timeout=args.duration + 120)
            if "failed" in outcome:
                raise SystemExit(f"load generator failed: {outcome['failed']}")
            load.join()
            server_cpu = process_cpu_seconds(server.pid) - cpu_before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

    rate = outcome["answers"] / outcome["elapsed"]
    latencies = outcome["latencies"]
    signing = raw_signing_rate()
    print(
        f"load: {args.connections} connections x {args.pipeline} pipelined {args.method.upper()}s, "
        f"{outcome['elapsed']:.1f} s, {outcome['answers']:,} answers, errors: {outcome['errors'] or 'none'}"
    )
    print(f"served from cache: {rate:,.0f} responses/s (target >= 3,000)")
    print(f"latency: p50 {percentile(latencies, 0.50) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms")
    print(f"server CPU during the run: {server_cpu:.1f} s over {outcome['elapsed']:.1f} s")
    print(f"raw cryptography OCSP signing (ECDSA P-256, one core): {signing:,.0f} responses/s")
    print(f"ratio served/raw signing: {rate / signing:.2f}")


if __name__ == "__main__":
    main()
