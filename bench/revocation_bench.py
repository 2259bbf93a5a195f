"""Bulk revoke of N issued certificates through RevocationService (pki.md §A2.2, issue 6 performance).

Fills a database with N Active certificates (bulk INSERT, one version each with a random 159-bit serial,
an owner with an e-mail address, so every revocation also writes its notification row), then revokes all
of them with one bulk call (owner filter) and prints the time next to the target: 10,000 certificates in
< 20 s on PostgreSQL; the original's bar was 1,000 in < 30 s. A second bulk call over the same certificates
(all skipped) shows the cost of the walk alone.

    .venv/bin/python bench/revocation_bench.py                       # temporary SQLite file
    CERTCTL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/certctl_bench \\
        .venv/bin/python bench/revocation_bench.py --certificates 10000

The PostgreSQL database must exist and be empty; it is migrated here and left filled (drop it after).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from certctl.certificates.listing import CertificateFilter
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.db import migrate
from certctl.db.engine import Database, make_engine
from certctl.issuers.connectors import ConnectorRegistry
from certctl.issuers.models import Issuer, IssuerType
from certctl.jobs.models import Job
from certctl.notifications.models import NotificationEvent
from certctl.org.models import Owner, Team
from certctl.pki.serials import random_serial
from certctl.policies.models import RenewalPolicy
from certctl.revocation.models import CertificateRevocation
from certctl.revocation.service import RevocationService
from certctl.security.encryption import ConfigCipher
from certctl.security.roles import SYSTEM_ACTOR

TARGET_SECONDS = 20.0  # 10,000 certificates, PostgreSQL
ORIGINAL_BAR = (1_000, 30.0)  # the original's acceptance: 1,000 certificates in < 30 s
FILL_BATCH = 5_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="print the top functions of the bulk revoke")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="certctl-revocation-bench-"))
    url = os.environ.get("CERTCTL_BENCH_DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    print(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
    migrate.upgrade(engine)
    db = Database(engine)
    clock = FrozenClock()

    started = time.perf_counter()
    fill(db, clock, args.certificates)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"filled {args.certificates} issued certificates in {time.perf_counter() - started:.1f} s")

    heard: list[str] = []
    connectors = ConnectorRegistry(db, ConfigCipher("bench-passphrase-0123456789abcdef"), clock)
    service = RevocationService(db, clock, connectors, listeners=[heard.append])
    flt = CertificateFilter(owner_id="o-bench")
    profiler = cProfile.Profile() if args.profile else None

    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    outcome = service.bulk_revoke(flt, "keyCompromise", SYSTEM_ACTOR)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = service.bulk_revoke(flt, "keyCompromise", SYSTEM_ACTOR)
    skip_seconds = time.perf_counter() - started

    with db.read() as session:
        counts = {
            name: session.scalar(select(func.count()).select_from(model))
            for name, model in (
                ("ledger rows", CertificateRevocation),
                ("jobs", Job),
                ("notifications", NotificationEvent),
            )
        }
    print(
        f"bulk revoke: {seconds:.2f} s for {outcome.total_revoked} of {outcome.total_matched} certificates "
        f"({outcome.total_revoked / seconds:,.0f}/s; failed {outcome.total_failed}); "
        f"{', '.join(f'{v} {k}' for k, v in counts.items())}; listener calls {len(heard)}"
    )
    print(f"second call (all {again.total_skipped} skipped): {skip_seconds:.2f} s")
    scaled = seconds * 10_000 / max(args.certificates, 1)
    verdict = "meets" if scaled < TARGET_SECONDS else "MISSES"
    print(f"target: 10,000 in < {TARGET_SECONDS:.0f} s on PostgreSQL -> {verdict} ({scaled:.2f} s for 10,000)")
    per_thousand = seconds * 1_000 / max(args.certificates, 1)
    print(
        f"original's bar: {ORIGINAL_BAR[0]:,} in < {ORIGINAL_BAR[1]:.0f} s -> {per_thousand:.2f} s per 1,000 "
        f"({ORIGINAL_BAR[1] / per_thousand:,.0f}x inside it)"
    )
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def fill(db: Database, clock: FrozenClock, certificates: int) -> None:
    now = clock.now()
    stamp = {"created_at": now, "updated_at": now}
    with db.begin() as session:
        session.add(Team(id="t-bench", name="bench", **stamp))
        session.flush()
        session.add(Owner(id="o-bench", name="Bench", email="bench@example.com", team_id="t-bench", **stamp))
        session.add(Issuer(id="iss-bench", name="Bench CA", type=IssuerType.GENERIC_CA, config={}, **stamp))
        session.add(RenewalPolicy(id="rp-bench", name="bench", renewal_window_days=30, **stamp))
    expires_at = now + timedelta(days=90)
    for start in range(0, certificates, FILL_BATCH):
        certs: list[dict[str, Any]] = []
        versions: list[dict[str, Any]] = []
        for n in range(start, min(start + FILL_BATCH, certificates)):
            cert_id = f"mc-bench-{n:07d}"
            certs.append(
                {
                    "id": cert_id,
                    "name": cert_id,
                    "common_name": f"host-{n}.bench.example.com",
                    "owner_id": "o-bench",
                    "team_id": "t-bench",
                    "issuer_id": "iss-bench",
                    "renewal_policy_id": "rp-bench",
                    "status": CertificateStatus.ACTIVE,
                    "expires_at": expires_at,
                    **stamp,
                }
            )
            versions.append(
                {
                    "id": f"v-{cert_id}",
                    "certificate_id": cert_id,
                    "serial_number": format(random_serial(), "x"),
                    "not_before": now,
                    "not_after": expires_at,
                    "fingerprint_sha256": hashlib.sha256(cert_id.encode()).hexdigest(),
                    "pem_chain": "",
                    "created_at": now,
                }
            )
        with db.begin() as session:
            session.execute(insert(ManagedCertificate), certs)
            session.execute(insert(CertificateVersion), versions)


if __name__ == "__main__":
    sys.exit(main())
