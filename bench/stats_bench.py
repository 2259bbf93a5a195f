"""Spot check for GET /api/v1/stats/summary (performance.md §3 check 1, §7.2) on a large inventory.

Fills a database with N certificates (bulk INSERT), some agents and jobs, then sends sequential
requests through the ASGI app in-process (auth and the whole middleware chain included, no sockets)
after a few warm-ups, and prints p50/p95 next to the target: p50 < 20 ms on 100k certificates in
PostgreSQL. It also times the service call alone, so database time and HTTP overhead can be told apart.

    .venv/bin/python bench/stats_bench.py                       # temporary SQLite file
    CERTCTL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/certctl_bench_x \\
        .venv/bin/python bench/stats_bench.py --certificates 100000

The PostgreSQL database must exist and be empty; it is migrated here and left filled (drop it after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, insert, text

from certctl.agents.models import Agent, AgentStatus
from certctl.app import create_app
from certctl.bootstrap import prepare
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.config import Settings
from certctl.context import AppContext
from certctl.db import migrate
from certctl.db.engine import make_engine
from certctl.issuers.models import Issuer, IssuerType
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.org.models import Owner, Team
from certctl.stats.api import router as stats_router
from certctl.stats.service import StatsService

TARGET_P50_MS = 20.0
BATCH = 5_000
API_KEY = "bench-admin-key-0123456789"
ENCRYPTION_KEY = "bench-encryption-passphrase-0123456789abcdef"
# Share of certificates per state: mostly healthy, as in a real fleet.
MIX: Sequence[tuple[float, CertificateStatus, tuple[int, int] | None]] = (
    (0.70, CertificateStatus.ACTIVE, (31, 400)),  # days until expiry (range)
    (0.10, CertificateStatus.ACTIVE, (1, 30)),
    (0.08, CertificateStatus.EXPIRED, (-200, -1)),
    (0.05, CertificateStatus.REVOKED, (-100, 300)),
    (0.04, CertificateStatus.RENEWAL_IN_PROGRESS, (1, 20)),
    (0.03, CertificateStatus.PENDING, None),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--no-fill", action="store_true", help="measure a database this script already filled")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="certctl-bench-"))
    url = os.environ.get("CERTCTL_BENCH_DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    print(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
    migrate.upgrade(engine)
    settings = Settings(
        data_dir=workdir / "data",
        database_url=url,
        api_keys_named=f"bench:{API_KEY}:admin",
        config_encryption_key=ENCRYPTION_KEY,
        rate_limit_enabled=False,
    )
    context = prepare(settings, run_migrations=False)
    rng = random.Random(args.seed)

    if not args.no_fill:
        started = time.perf_counter()
        fill(context, rng, certificates=args.certificates, agents=args.agents, jobs=args.jobs)
        # The bulk fill left one counted row per key and batch (triggers, revision 0004); the first summary
        # would fold them, as it does whenever more than FOLD_AFTER_ROWS changes are waiting.
        folded = StatsService(context.db, context.clock, started_at=context.clock.now()).fold_counts()
        analyse(engine)
        print(
            f"filled {args.certificates} certificates, {args.agents} agents, {args.jobs} jobs "
            f"in {time.perf_counter() - started:.1f} s (status_counts: {folded} rows folded into {kept_rows(engine)})"
        )

    service = StatsService(context.db, context.clock, started_at=context.clock.now())
    summary = service.summary()
    print(f"summary: {summary}")
    service_ms = measure(service.summary, args.warmup, args.requests)
    http_ms = asyncio.run(measure_http(context, args.warmup, args.requests))

    report("service.summary() (SQL only)", service_ms)
    report("GET /api/v1/stats/summary (ASGI)", http_ms)
    p50 = statistics.median(http_ms)
    verdict = "meets" if p50 < TARGET_P50_MS else "MISSES"
    print(f"target: p50 < {TARGET_P50_MS:.0f} ms on 100k certificates in PostgreSQL -> {verdict} ({p50:.2f} ms)")
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    context.db.dispose()
    engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def fill(context: AppContext, rng: random.Random, *, certificates: int, agents: int, jobs: int) -> None:
    now = context.clock.now()
    with context.db.begin() as session:
        session.add(Team(id="t-bench", name="bench", created_at=now, updated_at=now))
        session.flush()
        session.add(Owner(id="o-bench", name="Bench", email="bench@example.com", team_id="t-bench",
                          created_at=now, updated_at=now))  # fmt: skip
        session.add(Issuer(id="iss-bench", name="Bench CA", type=IssuerType.GENERIC_CA, config={},
                           created_at=now, updated_at=now))  # fmt: skip

    def certificate(n: int) -> dict[str, Any]:
        pick, cumulative = rng.random(), 0.0
        status, window = MIX[-1][1], MIX[-1][2]
        for share, candidate, days in MIX:
            cumulative += share
            if pick < cumulative:
                status, window = candidate, days
                break
        expires_at = now + timedelta(days=rng.uniform(*window)) if window else None
        return {
            "id": f"mc-bench-{n}",
            "name": f"bench-{n}",
            "common_name": f"host-{n}.bench.example.com",
            "owner_id": "o-bench",
            "team_id": "t-bench",
            "issuer_id": "iss-bench",
            "renewal_policy_id": "rp-default",
            "status": status,
            "expires_at": expires_at,
            "created_at": now - timedelta(days=rng.uniform(0, 400)),
            "updated_at": now,
        }

    insert_batches(context, insert(ManagedCertificate), certificates, certificate)
    insert_batches(
        context,
        insert(Agent),
        agents,
        lambda n: {
            "id": f"ag-bench-{n}",
            "name": f"agent-{n}",
            "hostname": f"agent-{n}.bench.example.com",
            "status": AgentStatus.ONLINE,
            "last_heartbeat_at": now - timedelta(seconds=rng.uniform(0, 900)),
            "registered_at": now - timedelta(days=30),
            "api_key_hash": "0" * 64,
            "retired_at": None,
        },
    )
    statuses = [JobStatus.COMPLETED] * 8 + [JobStatus.FAILED, JobStatus.PENDING, JobStatus.RUNNING]
    insert_batches(
        context,
        insert(Job),
        jobs,
        lambda n: job_row(n, rng.choice(statuses), rng, now, certificates),
    )


def job_row(n: int, status: JobStatus, rng: random.Random, now: datetime, certificates: int) -> dict[str, Any]:
    finished = status in (JobStatus.COMPLETED, JobStatus.FAILED)
    return {
        "id": f"job-bench-{n}",
        "type": JobType.DEPLOYMENT,
        "certificate_id": f"mc-bench-{rng.randrange(max(certificates, 1))}",
        "status": status,
        "scheduled_at": now,
        "completed_at": now - timedelta(days=rng.uniform(0, 60)) if finished else None,
        "next_retry_at": now + timedelta(hours=1) if status is JobStatus.FAILED and rng.random() < 0.5 else None,
        "created_at": now,
    }


def insert_batches(context: AppContext, stmt: Any, count: int, row: Callable[[int], dict[str, Any]]) -> None:
    for start in range(0, count, BATCH):
        with context.db.begin() as session:
            session.execute(stmt, [row(n) for n in range(start, min(start + BATCH, count))])


def analyse(engine: Engine) -> None:
    """Fresh planner statistics and visibility map, as autovacuum would leave a table of this age."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def kept_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM status_counts")).scalar_one())


def measure(call: Callable[[], object], warmup: int, requests: int) -> list[float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def measure_http(context: AppContext, warmup: int, requests: int) -> list[float]:
    app = create_app(context)
    if not any(getattr(route, "path", None) == "/api/v1/stats/summary" for route in app.routes):
        app.include_router(stats_router)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="https://bench", headers=headers) as client:
        for _ in range(warmup):
            (await client.get("/api/v1/stats/summary")).raise_for_status()
        timings = []
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get("/api/v1/stats/summary")
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return timings


def report(label: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(
        f"{label}: n={len(ordered)} p50={statistics.median(ordered):.2f} ms p95={p95:.2f} ms "
        f"mean={statistics.fmean(ordered):.2f} ms min={ordered[0]:.2f} ms max={ordered[-1]:.2f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
