"""Spot checks for notification delivery and the retry sweep (notifications.md §2.10, performance.md).

(a) Delivery: N pending Webhook notifications (default 10,000) sent to a local HTTP sink by
    `NotificationDispatcher.process_pending(Deadline.never())`, the pending processor's whole tick:
    claim a batch, POST it from the send pool, write outcomes and attempt rows, next batch. Prints
    seconds and rows/s per run and their median next to the target: 10,000 rows in < 10 s. The sink
    is the tests' `HttpSink` (tests/notifications/peers.py) in this process, so it shares the GIL and
    the CPUs with the sender, as a co-located receiver would.
(b) Retry sweep (PostgreSQL only): 1,000,000 rows loaded server-side with INSERT … SELECT
    generate_series (mostly sent, some dead, some failed and due later, 1,000 failed and due), VACUUM
    ANALYZE, then `NotificationStore.claim_due_retries` with a batch of 1,000 timed claim + commit,
    several runs with the claims released between them; prints p50/p95 next to the target (< 100 ms)
    and the EXPLAIN (ANALYZE, BUFFERS) of the statement the store sends, captured from the driver.
    A reference claim (the same statement with its UPDATE filtered by `id IN picked` alone, written
    here, not the product's code) is timed beside it, and both again with --backlog rows due.

    .venv/bin/python bench/notifications_bench.py              # temporary SQLite file; (b) is skipped
    psql -h 127.0.0.1 -U postgres -c 'create database certctl_bench_notif'
    CERTCTL_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/certctl_bench_notif \\
        .venv/bin/python bench/notifications_bench.py

Batch size and send concurrency default to the Settings defaults (CERTCTL_NOTIFICATION_BATCH_SIZE,
CERTCTL_NOTIFICATION_SEND_CONCURRENCY); --batch-size / --concurrency override them. The PostgreSQL
database must exist and be empty; it is migrated here and left filled (drop it after). The sink
comes from the checkout's `tests/notifications/peers.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from certctl.clock import SystemClock
from certctl.config import Settings
from certctl.db import migrate
from certctl.db.engine import Database, make_engine
from certctl.notifications.delivery import DeliverySummary
from certctl.notifications.models import MAX_ATTEMPTS, NotificationAttempt, NotificationEvent, NotificationStatus
from certctl.notifications.store import NotificationStore
from certctl.notifications.wiring import build_notifications
from certctl.scheduler.deadline import Deadline

ROOT = Path(__file__).resolve().parents[1]
TARGET_DELIVERY_SECONDS = 10.0  # 10,000 pending notifications through the Webhook channel
TARGET_SWEEP_MS = 100.0  # claim of 1,000 due rows among 1,000,000
SWEEP_INDEX = "idx_notification_events_retry_sweep"
BATCH = 5_000
LEASE = timedelta(minutes=5)
WORKER = "bench:notifications"


def main() -> int:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=10_000, help="pending rows per delivery run")
    parser.add_argument("--runs", type=int, default=3, help="delivery runs (fresh rows each time)")
    parser.add_argument("--batch-size", type=int, default=defaults.notification_batch_size)
    parser.add_argument("--concurrency", type=int, default=defaults.notification_send_concurrency)
    parser.add_argument("--sweep-rows", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000, help="failed rows whose retry is due")
    parser.add_argument("--sweep-runs", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=10_000, help="then time claims with this many due (0: skip)")
    parser.add_argument("--skip-delivery", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="certctl-notif-bench-"))
    url = os.environ.get("CERTCTL_BENCH_DATABASE_URL") or f"sqlite:///{workdir / 'bench.db'}"
    engine = make_engine(url)
    print(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
    migrate.upgrade(engine)
    db = Database(engine)
    try:
        if not args.skip_delivery:
            bench_delivery(db, url, workdir, args)
        if args.skip_sweep:
            print("retry sweep: skipped (--skip-sweep)")
        elif engine.dialect.name == "postgresql":
            bench_sweep(db, args)
        else:
            print("retry sweep: skipped (PostgreSQL only; set CERTCTL_BENCH_DATABASE_URL)")
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    finally:
        db.dispose()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


# -- (a) delivery ----------------------------------------------------------------------------------


def bench_delivery(db: Database, url: str, workdir: Path, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.notifications.peers import HttpSink

    sink = HttpSink().start()
    clock = SystemClock()
    settings = Settings(
        data_dir=workdir / "data",
        database_url=url,
        webhook_url=f"{sink.url}/hooks/certctl",
        outbound_allow_loopback=True,  # the sink listens on 127.0.0.1
        notification_batch_size=args.batch_size,
        notification_send_concurrency=args.concurrency,
    )
    notifications = build_notifications(settings, db, clock)
    print(
        f"delivery: {args.notifications} pending Webhook notifications per run, batch {args.batch_size}, "
        f"send concurrency {args.concurrency}, sink {sink.url}"
    )
    seconds: list[float] = []
    try:
        for run in range(1, args.runs + 1):
            empty_notifications(db)
            fill_pending(db, clock.now(), args.notifications)
            analyse(db.engine)
            sink.reset()
            started = time.perf_counter()
            summary = notifications.dispatcher.process_pending(Deadline.never())
            elapsed = time.perf_counter() - started
            seconds.append(elapsed)
            check_delivered(db, summary, len(sink.requests), args.notifications)
            print(
                f"  run {run}: {elapsed:.2f} s, {args.notifications / elapsed:,.0f} rows/s "
                f"({summary.batches} batches, sent {summary.sent}, failed {summary.failed}, dead {summary.dead})"
            )
    finally:
        notifications.close()
        sink.stop()
    median = statistics.median(seconds)
    verdict = "meets" if median < TARGET_DELIVERY_SECONDS else "MISSES"
    print(
        f"delivery median: {median:.2f} s, {args.notifications / median:,.0f} rows/s over {len(seconds)} runs "
        f"-> target < {TARGET_DELIVERY_SECONDS:.0f} s for 10,000: {verdict}"
    )


def fill_pending(db: Database, now: datetime, count: int) -> None:
    stamp = now.strftime("%H%M%S%f")
    for start in range(0, count, BATCH):
        rows = [
            {
                "id": f"notif-bench-{stamp}-{n:07d}",
                "type": "RenewalFailure",
                "channel": "Webhook",
                "recipient": "ops@example.com",  # not a URL: the channel posts to CERTCTL_WEBHOOK_URL
                "message": f"Certificate mc-bench-{n} renewal failed: issuer timed out (bench row {n})",
                "status": NotificationStatus.PENDING.value,
                "created_at": now - timedelta(milliseconds=count - n),
                "retry_count": 0,
                "attempt_count": 0,
            }
            for n in range(start, min(start + BATCH, count))
        ]
        with db.begin() as session:
            session.execute(insert(NotificationEvent), rows)


def check_delivered(db: Database, summary: DeliverySummary, received: int, expected: int) -> None:
    with db.begin() as session:
        sent = session.scalar(
            select(func.count()).select_from(NotificationEvent).where(NotificationEvent.status == "sent")
        )
        attempts = session.scalar(select(func.count()).select_from(NotificationAttempt))
    found = {"summary.sent": summary.sent, "sent rows": sent, "attempt rows": attempts, "sink requests": received}
    if any(value != expected for value in found.values()):
        raise SystemExit(f"delivery incomplete: expected {expected} of each, found {found}")


def empty_notifications(db: Database) -> None:
    with db.begin() as session:
        session.execute(delete(NotificationAttempt))
        session.execute(delete(NotificationEvent))


# -- (b) retry sweep -------------------------------------------------------------------------------

# Server-side fill: row n of `total`; `due` rows are failed and due (spread over the last hour), then
# 1% failed and due later (up to 8 minutes ahead, as the backoff schedules them), 3% dead, the rest sent.
SWEEP_FILL = """
INSERT INTO notification_events
    (id, type, channel, recipient, message, status, created_at, sent_at, retry_count, attempt_count,
     next_retry_at, last_error, error)
SELECT 'notif-sweep-' || lpad(n::text, 8, '0'),
       (ARRAY['ExpirationWarning','RenewalSuccess','RenewalFailure','DeploymentSuccess',
              'DeploymentFailure','Revocation'])[1 + n % 6],
       (ARRAY['Email','Webhook','Slack','Teams','PagerDuty','OpsGenie'])[1 + n % 6],
       'ops@example.com',
       'Certificate mc-sweep-' || n || ' expires in 14 days',
       kind.status,
       :now - make_interval(mins => (:total - n) / 10),
       CASE WHEN kind.status = 'sent' THEN :now - make_interval(mins => (:total - n) / 10) END,
       kind.retry_count,
       kind.retry_count + 1,
       kind.next_retry_at,
       kind.last_error,
       kind.last_error
FROM generate_series(1, :total) AS n
CROSS JOIN LATERAL (
    SELECT CASE
             WHEN n <= :due THEN 'failed'
             WHEN n % 100 = 1 THEN 'failed'
             WHEN n % 100 IN (2, 3, 4) THEN 'dead'
             ELSE 'sent'
           END AS status,
           CASE
             WHEN n <= :due OR n % 100 = 1 THEN n % 4
             WHEN n % 100 IN (2, 3, 4) THEN 5
             ELSE 0
           END AS retry_count,
           CASE
             WHEN n <= :due THEN :now - make_interval(secs => n * 3600.0 / :due)
             WHEN n % 100 = 1 THEN :now + make_interval(secs => 1 + n % 480)
           END AS next_retry_at,
           CASE
             WHEN n <= :due OR n % 100 IN (1, 2, 3, 4) THEN 'webhook returned status 503: upstream unavailable'
           END AS last_error
) AS kind
"""


def bench_sweep(db: Database, args: argparse.Namespace) -> None:
    now = SystemClock().now()  # one instant for the whole sweep part, so exactly `due` rows are due
    empty_notifications(db)
    started = time.perf_counter()
    with db.begin() as session:
        session.execute(text(SWEEP_FILL), {"now": now, "total": args.sweep_rows, "due": args.due})
    loaded = time.perf_counter() - started
    analyse(db.engine)
    with db.begin() as session:
        by_status = select(NotificationEvent.status, func.count()).group_by(NotificationEvent.status)
        counts = {str(status): int(count) for status, count in session.execute(by_status)}
        index_mb = session.scalar(text("SELECT pg_relation_size(:i) / 1048576.0"), {"i": SWEEP_INDEX})
    print(
        f"retry sweep: loaded {args.sweep_rows:,} rows in {loaded:.1f} s (+ VACUUM ANALYZE) "
        f"{dict(sorted(counts.items()))}; {SWEEP_INDEX} is {index_mb:.2f} MB"
    )

    store_ms = time_claims(db, now, args.due, args.sweep_runs, store_claim)
    reference_ms = time_claims(db, now, args.due, args.sweep_runs, reference_claim)
    report_claims(f"claim_due_retries (batch {args.due}, claim + commit)", store_ms, TARGET_SWEEP_MS)
    report_claims("reference: same claim, outer UPDATE filtered by `id IN picked` only", reference_ms, None)
    print("plan of the store's claim statement (EXPLAIN ANALYZE, rolled back):")
    plan = explain_claim(db, now, args.due)
    print("\n".join(f"  {line}" for line in plan))
    used = any(SWEEP_INDEX in line for line in plan)
    print(f"partial index {SWEEP_INDEX} used: {'yes' if used else 'NO'}")

    if args.backlog > args.due:
        make_due(db, now, args.backlog - args.due)
        runs = max(3, args.sweep_runs // 4)
        backlog_store = time_claims(db, now, args.due, runs, store_claim)
        backlog_reference = time_claims(db, now, args.due, runs, reference_claim)
        report_claims(f"backlog of {args.backlog:,} due: claim_due_retries (batch {args.due})", backlog_store, None)
        report_claims(f"backlog of {args.backlog:,} due: reference claim", backlog_reference, None)


Claim = Callable[[Session, datetime, int], int]


def store_claim(session: Session, now: datetime, limit: int) -> int:
    return len(NotificationStore(session).claim_due_retries(WORKER, now, LEASE, limit))


def reference_claim(session: Session, now: datetime, limit: int) -> int:
    """The store's statement with the outer UPDATE filtered by `id IN picked` alone.

    The picked rows are locked FOR UPDATE by the CTE (PostgreSQL re-checks its WHERE on a row updated
    meanwhile), so the outer repeat of the predicate only gives the planner a second, mis-estimated
    path through the partial index.
    """
    event = NotificationEvent
    candidates = (
        select(event.id)
        .where(
            event.status == NotificationStatus.FAILED.value,
            event.next_retry_at.is_not(None),
            event.next_retry_at <= now,
            event.retry_count < MAX_ATTEMPTS,
            or_(event.claim_expires_at.is_(None), event.claim_expires_at < now),
        )
        .order_by(event.next_retry_at, event.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    picked = candidates.cte("picked").prefix_with("MATERIALIZED")
    stmt = (
        update(event)
        .where(event.id.in_(select(picked.c.id)))
        .values(claimed_by=WORKER, claim_expires_at=now + LEASE)
        .returning(event)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return len(session.scalars(stmt).all())


def time_claims(db: Database, now: datetime, limit: int, runs: int, claim: Claim) -> list[float]:
    """Milliseconds per claim + commit; the first run warms the cache and is not counted."""
    timings: list[float] = []
    for _ in range(runs + 1):
        release_claims(db)
        started = time.perf_counter()
        with db.begin() as session:
            claimed = claim(session, now, limit)
        timings.append((time.perf_counter() - started) * 1000)
        if claimed != limit:
            raise SystemExit(f"the sweep claimed {claimed} rows, expected {limit}")
    release_claims(db)
    return timings[1:]


def report_claims(label: str, timings: list[float], target_ms: float | None) -> None:
    ordered = sorted(timings)
    p50 = statistics.median(ordered)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    verdict = ""
    if target_ms is not None:
        verdict = f" -> target < {target_ms:.0f} ms: {'meets' if p50 < target_ms else 'MISSES'}"
    print(
        f"{label}: n={len(ordered)} p50={p50:.1f} ms p95={p95:.1f} ms "
        f"min={ordered[0]:.1f} ms max={ordered[-1]:.1f} ms{verdict}"
    )


def make_due(db: Database, now: datetime, count: int) -> None:
    """Bring `count` of the failed rows scheduled later forward to an hour ago (a delivery outage)."""
    with db.begin() as session:
        session.execute(
            text(
                "UPDATE notification_events SET next_retry_at = :earlier WHERE id IN ("
                "SELECT id FROM notification_events WHERE status = 'failed' AND next_retry_at > :now "
                "ORDER BY id LIMIT :count)"
            ),
            {"earlier": now - timedelta(hours=1, minutes=1), "now": now, "count": count},
        )
    analyse(db.engine)


def release_claims(db: Database) -> None:
    """Undo the previous run's claims, then VACUUM so every run starts from the same clean index."""
    with db.begin() as session:
        session.execute(
            text(
                "UPDATE notification_events SET claimed_by = NULL, claim_expires_at = NULL WHERE claimed_by IS NOT NULL"
            )
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM notification_events"))


@contextmanager
def captured_sql(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) the driver receives inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def explain_claim(db: Database, now: datetime, limit: int) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact UPDATE … RETURNING the store sends, in a rolled-back transaction."""
    with db.sessions() as session, captured_sql(db.engine) as seen:
        store_claim(session, now, limit)
        session.rollback()
    statement, parameters = next((s, p) for s, p in seen if s.lstrip().upper().startswith(("WITH", "UPDATE")))
    with db.engine.connect() as conn, conn.begin() as transaction:
        result = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        lines = [str(row[0]) for row in result]
        transaction.rollback()
    return lines


# -- shared ----------------------------------------------------------------------------------------


def analyse(engine: Engine) -> None:
    """Fresh planner statistics and visibility map, as autovacuum would leave a table of this age."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE notification_events"))
            conn.execute(text("VACUUM ANALYZE notification_attempts"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


if __name__ == "__main__":
    sys.exit(main())
