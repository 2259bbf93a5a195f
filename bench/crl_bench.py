"""CRL regeneration with 100,000 revoked entries (issue 6 performance: < 2 s), on PostgreSQL.

Seeds N revocation rows for one local-CA issuer (bulk INSERT), then times `CRLService.regenerate` (ledger
read, build, sign, store, history row: what a revocation or the `crl-refresh` loop costs) a few times and
prints best and median against the target. For comparison, the same entries through cryptography's public
per-entry path (`RevokedCertificateBuilder` for each entry, then one builder) and through certctl's builder
alone (`certctl.crl.builder.build_crl`, no database).

    .venv/bin/python bench/crl_bench.py [--entries 100000] [--runs 5]
    CERTCTL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/<empty db> .venv/bin/python bench/crl_bench.py

Without CERTCTL_BENCH_DATABASE_URL a throwaway database is created on the local PostgreSQL server
(127.0.0.1:5432) and dropped at the end; without a server, a temporary SQLite file is used.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from certctl.clock import SystemClock
from certctl.crl.builder import CRLEntry, LedgerRow, RevokedEntries, build_crl
from certctl.crl.service import CRLService
from certctl.db import migrate
from certctl.db.engine import Database, make_engine
from certctl.issuers.connectors import ConnectorRegistry
from certctl.issuers.models import Issuer, IssuerType
from certctl.pki.local_ca import LocalCA
from certctl.pki.serials import random_serial
from certctl.revocation.models import CertificateRevocation
from certctl.revocation.reasons import reason_code
from certctl.security.encryption import ConfigCipher

TARGET_SECONDS = 2.0
LOCAL_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ISSUER = "iss-bench"
REASONS = ("keyCompromise", "superseded", "unspecified", "cessationOfOperation", "affiliationChanged")
FILL_BATCH = 10_000
FLAGS = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the top functions of one regenerate")
    args = parser.parse_args()

    with database_url() as url:
        engine = make_engine(url)
        print(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
        migrate.upgrade(engine)
        db = Database(engine)
        clock = SystemClock()
        started = time.perf_counter()
        fill(db, clock.now(), args.entries)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        print(f"seeded {args.entries} revocation rows in {time.perf_counter() - started:.1f} s")

        service = fresh_service(db, clock)
        service.local_ca(ISSUER)  # create and persist the CA outside the timings
        timings = [timed(lambda: service.regenerate(ISSUER, "admin")) for _ in range(args.runs)]
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(service.regenerate, ISSUER, "admin")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        snapshot = service.current(ISSUER)
        report("CRLService.regenerate (DB read + build + sign + store)", timings)
        print(
            f"  CRL number {snapshot.crl_number}, {snapshot.revoked_count} entries, {len(snapshot.der) / 2**20:.1f} MiB"
        )
        cached = [timed(lambda: fresh_service(db, clock).current(ISSUER)) for _ in range(args.runs)]
        report("CRLService.current from the database cache (a process without the CRL in memory)", cached)

        ca = service.local_ca(ISSUER)
        now = clock.now()
        entries = [
            CRLEntry(serial, now - timedelta(days=1), code)
            for serial, code in zip(
                (random_serial() for _ in range(args.entries)), (1, 4, 0, 5, 3) * (args.entries // 5 + 1), strict=False
            )
        ]
        rows = [
            (format(e.serial, "x"), e.revoked_at.strftime("%Y%m%d%H%M%S"), REASONS[n % 5])
            for n, e in enumerate(entries)
        ]
        ours = [timed(lambda: build_from_ledger(ca, rows, now)) for _ in range(3)]
        report("certctl RevokedEntries.from_ledger + build_crl (no database)", ours)
        raw = [timed(lambda: per_entry_builder(ca, entries, now)) for _ in range(3)]
        report("cryptography per-entry RevokedCertificateBuilder + builder + sign (no database)", raw)
        print(f"  certctl builder vs cryptography's per-entry path: {min(raw) / min(ours):.1f}x faster")
        engine.dispose()
        best = min(timings)
        verdict = "meets" if best < TARGET_SECONDS else "MISSES"
        print(
            f"\n{args.entries} entries regenerated in {best:.2f} s (best), target < {TARGET_SECONDS:.0f} s: {verdict}"
        )
        return 0 if best < TARGET_SECONDS else 1


def fresh_service(db: Database, clock: SystemClock) -> CRLService:
    return CRLService(db, clock, ConnectorRegistry(db, ConfigCipher("crl-bench-passphrase-0123456789ab"), clock))


def build_from_ledger(ca: LocalCA, rows: list[LedgerRow], now: datetime) -> x509.CertificateRevocationList:
    revoked = RevokedEntries.from_ledger(rows, lambda name: int(reason_code(name)))
    return build_crl(
        ca.certificate, ca.signing_key, revoked, crl_number=1, this_update=now, next_update=now + timedelta(hours=24)
    )


def per_entry_builder(ca: LocalCA, entries: list[CRLEntry], now: datetime) -> x509.CertificateRevocationList:
    """The straightforward public-API path. `add_revoked_certificate` copies the list on every call
    (quadratic), so the entries go through the builder's constructor, as certctl's builder does."""
    flags = {1: FLAGS["keyCompromise"], 3: FLAGS["affiliationChanged"], 4: FLAGS["superseded"]}
    flags[5] = FLAGS["cessationOfOperation"]
    revoked = []
    for serial, revoked_at, code in entries:
        builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
        if code:
            builder = builder.add_extension(x509.CRLReason(flags[code]), critical=False)
        revoked.append(builder.build())
    builder = x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
    builder = builder.issuer_name(ca.certificate.subject).last_update(now).next_update(now + timedelta(hours=24))
    return ca.signing_key.sign_crl(builder.add_extension(x509.CRLNumber(1), critical=False))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def report(label: str, seconds: list[float]) -> None:
    print(f"{label}: best {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s ({len(seconds)} runs)")


def fill(db: Database, now: datetime, count: int) -> None:
    with db.begin() as session:
        session.add(
            Issuer(
                id=ISSUER, name="CRL bench CA", type=IssuerType.GENERIC_CA, config={}, created_at=now, updated_at=now
            )
        )
    with db.begin() as session:
        for start in range(0, count, FILL_BATCH):
            rows = [
                {
                    "id": f"rev-{start + n:08d}",
                    "issuer_id": ISSUER,
                    "serial_number": format(random_serial(), "x"),
                    "reason": REASONS[(start + n) % len(REASONS)],
                    "revoked_by": "bench",
                    "revoked_at": now - timedelta(seconds=start + n),
                    "not_after": now + timedelta(days=90),
                    "short_lived": False,
                    "issuer_notified": True,
                }
                for n in range(min(FILL_BATCH, count - start))
            ]
            session.execute(insert(CertificateRevocation), rows)


@contextmanager
def database_url() -> Iterator[str]:
    given = os.environ.get("CERTCTL_BENCH_DATABASE_URL")
    if given:
        yield given
        return
    admin = create_engine(LOCAL_PG, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # no local server: fall back to SQLite, and say so
        print(f"PostgreSQL not reachable at {LOCAL_PG} ({type(exc).__name__}); using SQLite")
        with tempfile.TemporaryDirectory(prefix="certctl-crl-bench-") as workdir:
            yield f"sqlite:///{workdir}/bench.db"
        return
    name = f"certctl_crlbench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(LOCAL_PG).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
