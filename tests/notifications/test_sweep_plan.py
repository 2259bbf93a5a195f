"""On PostgreSQL the retry sweep's claim reads the partial index idx_notification_events_retry_sweep, and
that index holds only failed rows with a retry scheduled: dead rows are neither in it nor ever claimed.

The table gets enough sent and dead rows (ANALYZEd) that the planner would rather scan an index than the
table; the plan checked is the one for the exact statement the store sends, captured from the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from certctl.db import migrate
from certctl.db.engine import Database, make_engine
from certctl.notifications.store import NotificationStore
from tests.conftest import PgDatabases

pytestmark = pytest.mark.postgres

INDEX = "idx_notification_events_retry_sweep"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
SENT, DEAD, DUE, LATER, STALE_DEAD = 20_000, 2_000, 5, 5, 5
# n ranges: sent rows, dead rows (next_retry_at cleared), failed and due, failed and due later, and dead
# rows that kept a past next_retry_at (legacy data): only the DUE rows may ever be claimed.
FILL = """
INSERT INTO notification_events
    (id, type, channel, recipient, message, status, created_at, sent_at, retry_count, attempt_count,
     next_retry_at, last_error)
SELECT 'notif-' || lpad(n::text, 6, '0'), 'ExpirationWarning', 'Webhook', 'ops@example.com',
       'Certificate mc-' || n || ' expires in 7 days', kind.status, :now - interval '1 day',
       CASE WHEN kind.status = 'sent' THEN :now - interval '1 day' END,
       kind.retry_count, kind.retry_count + 1, kind.next_retry_at, kind.last_error
FROM generate_series(1, :total) AS n
CROSS JOIN LATERAL (
    SELECT CASE WHEN n <= :sent THEN 'sent' WHEN n <= :dead THEN 'dead'
                WHEN n <= :later THEN 'failed' ELSE 'dead' END AS status,
           CASE WHEN n <= :sent THEN 0 WHEN n <= :dead THEN 5 WHEN n <= :later THEN 2 ELSE 5 END AS retry_count,
           CASE WHEN n <= :dead THEN NULL
                WHEN n <= :due THEN :now - make_interval(mins => n % 7 + 1)
                WHEN n <= :later THEN :now + interval '4 minutes'
                ELSE :now - interval '2 hours' END AS next_retry_at,
           CASE WHEN n > :sent THEN 'webhook returned status 503: upstream unavailable' END AS last_error
) AS kind
"""


@pytest.fixture(scope="module")
def swept_engine(pg_databases: PgDatabases | None) -> Iterator[Engine]:
    """A migrated database of its own (its planner statistics must not leak into other tests), filled."""
    if pg_databases is None:
        pytest.skip("the partial index plan is a PostgreSQL matter (set CERTCTL_TEST_DATABASE_URL)")
    engine = make_engine(pg_databases.create("sweep_plan"))
    migrate.upgrade(engine)
    bounds = {"sent": SENT, "dead": SENT + DEAD, "due": SENT + DEAD + DUE, "later": SENT + DEAD + DUE + LATER}
    with engine.begin() as conn:
        conn.execute(text(FILL), {"now": NOW, "total": bounds["later"] + STALE_DEAD, **bounds})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE notification_events"))
    yield engine
    engine.dispose()


def claim_capturing_sql(engine: Engine) -> tuple[list[str], str, Any]:
    """Run the sweep's claim (rolled back); the claimed ids and the UPDATE statement the driver received."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    db = Database(engine)
    event.listen(engine, "before_cursor_execute", record)
    try:
        with db.sessions() as session:
            claimed = NotificationStore(session).claim_due_retries("w-plan", NOW, LEASE, 1_000)
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    [(statement, parameters)] = [(s, p) for s, p in seen if "UPDATE notification_events" in s]
    return [row.id for row in claimed], statement, parameters


def index_names(plan: dict[str, Any]) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= index_names(child)
    return found


def test_the_sweep_claim_finds_its_candidates_through_the_partial_index(swept_engine: Engine) -> None:
    _, statement, parameters = claim_capturing_sql(swept_engine)
    with swept_engine.connect() as conn:
        [[plan]] = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).all()
    top = plan[0]["Plan"]
    [candidates] = [node for node in top.get("Plans", []) if node.get("Subplan Name") == "CTE picked"]
    assert INDEX in index_names(candidates), candidates


def test_dead_rows_are_not_in_the_index_and_never_come_back_from_the_sweep(swept_engine: Engine) -> None:
    claimed, _, _ = claim_capturing_sql(swept_engine)
    first_due = SENT + DEAD + 1
    assert sorted(claimed) == [f"notif-{n:06d}" for n in range(first_due, first_due + DUE)]
    with swept_engine.connect() as conn:
        pages = conn.scalar(text("SELECT pg_relation_size(:i) / current_setting('block_size')::int"), {"i": INDEX})
    # The metapage and one leaf: the ten failed rows fit on it, the 2,005 dead ones would need several.
    assert pages == 2
