"""Two replicas on one PostgreSQL drain 2,000 notifications against a flaky sink: no notification is
delivered twice, none is lost (every row ends `sent` or `dead`), and every attempt is on record."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from certctl.context import AppContext
from certctl.notifications.models import NotificationAttempt, NotificationEvent
from tests.notifications.peers import HttpSink
from tests.notifications.rows import enqueue

ROWS = 2_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def start_replica(url: str, name: str, webhook: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.notifications.delivery_worker", url, name, webhook],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def run_round(replicas: list[subprocess.Popen[str]], at: datetime) -> int:
    for replica in replicas:
        assert replica.stdin is not None
        replica.stdin.write(f"ROUND {at.isoformat()}\n")
        replica.stdin.flush()
    claimed = 0
    for replica in replicas:
        assert replica.stdout is not None
        claimed += int(replica.stdout.readline().split()[1])
    return claimed


@pytest.mark.postgres
def test_two_replicas_deliver_each_notification_once_and_lose_none(
    context_factory: Callable[..., AppContext], database_url: str, http_sink: HttpSink
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    context = context_factory(webhook_url=http_sink.url, outbound_allow_loopback=True)
    ids = enqueue(context, ROWS)
    http_sink.flaky(0.3, seed=7)
    replicas = [start_replica(database_url, name, http_sink.url) for name in ("replica-a", "replica-b")]
    try:
        at = START
        for _ in range(12):  # 5 attempts need 5 rounds; the rest is slack that must find nothing to do
            run_round(replicas, at)
            at += timedelta(minutes=10)  # every wait (1-8 minutes) has passed by the next round
        assert run_round(replicas, at + timedelta(days=1)) == 0
    finally:
        for replica in replicas:
            replica.communicate("STOP\n", timeout=60)

    with context.db.begin() as session:
        statuses = Counter(session.scalars(select(NotificationEvent.status)))
        attempts = Counter(session.scalars(select(NotificationAttempt.notification_id)))
        workers = set(session.scalars(select(NotificationAttempt.worker).distinct()))
        dead_retry_counts = set(
            session.scalars(select(NotificationEvent.retry_count).where(NotificationEvent.status == "dead"))
        )
        sent_total = session.scalar(select(func.count()).where(NotificationEvent.status == "sent"))
    assert set(statuses) <= {"sent", "dead"}, statuses
    assert sum(statuses.values()) == ROWS
    assert workers == {"replica-a", "replica-b"}
    assert dead_retry_counts <= {5}

    requests = http_sink.requests
    delivered = Counter(r.json["event_id"] for r in requests if r.answered_status == 200)
    tried = Counter(r.json["event_id"] for r in requests)
    assert set(tried) == set(ids)
    assert max(delivered.values()) == 1, "a notification was delivered twice"
    assert sum(delivered.values()) == sent_total
    assert tried == attempts, "every request the sink saw is one recorded attempt, and no more"
