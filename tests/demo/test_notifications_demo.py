"""The demo's notifications: every delivery state with a consistent attempt history, the dead-letter queue
visible through the API, nothing added by a second load, and no retry or expiry alert due at load time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise

import pytest
from sqlalchemy import func, select

from certctl.bootstrap import seed_env_issuers
from certctl.certificates.renewal import RenewalChecker
from certctl.clock import FrozenClock
from certctl.config import KeygenMode
from certctl.context import AppContext
from certctl.demo import load_demo
from certctl.notifications.channels.base import ChannelName
from certctl.notifications.expiry import ExpiryAlerter
from certctl.notifications.models import (
    MAX_ATTEMPTS,
    AttemptOutcome,
    NotificationAttempt,
    NotificationEvent,
    NotificationStatus,
    NotificationType,
)
from certctl.scheduler.deadline import Deadline
from tests.conftest import client_for

STATUSES = {"read": 11, "sent": 4, "dead": 3, "failed": 1, "pending": 1}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def demo(context_factory: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    context = context_factory(clock)
    seed_env_issuers(context)
    load_demo(context)
    return context


def stored(context: AppContext) -> tuple[list[NotificationEvent], dict[str, list[NotificationAttempt]]]:
    with context.db.begin() as session:
        events = list(session.scalars(select(NotificationEvent).order_by(NotificationEvent.id)))
        by_row: dict[str, list[NotificationAttempt]] = {event.id: [] for event in events}
        stmt = select(NotificationAttempt).order_by(
            NotificationAttempt.notification_id, NotificationAttempt.attempt_number
        )
        for attempt in session.scalars(stmt):
            by_row[attempt.notification_id].append(attempt)
    return events, by_row


def test_every_delivery_state_is_loaded_with_a_matching_attempt_history(demo: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    events, attempts = stored(demo)
    assert Counter(event.status for event in events) == STATUSES
    assert {event.type for event in events} <= {t.value for t in NotificationType}
    assert {event.channel for event in events} == {ChannelName.EMAIL, ChannelName.WEBHOOK, ChannelName.SLACK}
    for event in events:
        history = attempts[event.id]
        assert [a.attempt_number for a in history] == list(range(1, event.attempt_count + 1)), event.id
        assert all(a.channel == event.channel for a in history)
        assert history or event.status == NotificationStatus.PENDING, event.id
        assert all(event.created_at <= a.attempted_at for a in history)
        assert all(earlier.attempted_at < later.attempted_at for earlier, later in pairwise(history))
        assert max([event.created_at, *(a.attempted_at for a in history)]) <= now, event.id
        assert event.claimed_by is None
        outcomes = [a.outcome for a in history]
        if event.status in (NotificationStatus.SENT, NotificationStatus.READ):
            assert outcomes[-1] == AttemptOutcome.SUCCESS
            assert event.sent_at is not None
            assert event.retry_count == len(history) - 1  # "delivered on attempt N" keeps N - 1
        if event.status == NotificationStatus.READ:
            assert event.read_at is not None
            assert event.sent_at is not None
            assert event.sent_at < event.read_at <= now
        if event.status in (NotificationStatus.DEAD, NotificationStatus.FAILED):
            assert event.last_error == event.error == history[-1].error
            assert event.sent_at is None
        if event.status == NotificationStatus.DEAD:
            assert event.next_retry_at is None
            if outcomes == [AttemptOutcome.NOT_CONFIGURED]:
                assert event.retry_count == 0
            else:
                assert outcomes == [AttemptOutcome.FAILURE] * MAX_ATTEMPTS
                assert event.retry_count == MAX_ATTEMPTS
    [failed] = [event for event in events if event.status == NotificationStatus.FAILED]
    assert failed.next_retry_at is not None
    assert now < failed.next_retry_at < now + timedelta(minutes=8)
    assert 0 < failed.retry_count < MAX_ATTEMPTS
    assert failed.attempt_count > failed.retry_count  # requeued after an earlier run through the budget
    [pending] = [event for event in events if event.status == NotificationStatus.PENDING]
    assert (pending.retry_count, pending.next_retry_at, pending.last_error) == (0, None, None)


def test_the_dead_letter_queue_is_listed_by_the_api_with_its_errors(demo: AppContext) -> None:
    with client_for(demo) as api:
        dead = api.get("/api/v1/notifications", params={"status": "dead"})
        assert dead.status_code == 200, dead.text
        page = dead.json()
        by_channel = {row["channel"]: row for row in page["data"]}
        histories = {
            row["channel"]: api.get(f"/api/v1/notifications/{row['id']}/attempts").json()["data"]
            for row in page["data"]
        }
    assert page["total"] == 3
    assert sorted(by_channel) == ["Email", "Slack", "Webhook"]
    assert by_channel["Webhook"]["last_error"] == "webhook returned status 503: upstream unavailable"
    assert "451" in by_channel["Email"]["last_error"]
    slack = by_channel["Slack"]
    assert slack["last_error"] == "channel Slack is not configured: set CERTCTL_SLACK_WEBHOOK_URL"
    assert (slack["retry_count"], slack["type"]) == (0, "ExpirationWarning")
    assert [(a["outcome"], a["http_status"]) for a in histories["Webhook"]] == [("failure", 503)] * MAX_ATTEMPTS
    assert [a["trigger"] for a in histories["Webhook"]] == ["immediate"] + ["retry"] * (MAX_ATTEMPTS - 1)
    assert [a["outcome"] for a in histories["Slack"]] == ["not_configured"]


def table_rows(context: AppContext) -> list[tuple[object, ...]]:
    with context.db.begin() as session:
        return [
            tuple(row)
            for model in (NotificationEvent, NotificationAttempt)
            for row in session.execute(select(model.__table__).order_by(model.id))
        ]


def test_a_second_load_adds_no_notification(demo: AppContext, clock: FrozenClock) -> None:
    before = table_rows(demo)
    clock.advance(timedelta(days=2))
    summary = load_demo(demo)
    assert (summary.inserted["notification_events"], summary.inserted["notification_attempts"]) == (0, 0)
    assert table_rows(demo) == before


def test_no_retry_is_due_and_no_expiry_alert_is_queued_at_load_time(demo: AppContext) -> None:
    assert demo.notifications.dispatcher.retry_failed(Deadline.never()).claimed == 0
    alerter = ExpiryAlerter(demo.clock, demo.notifications.dispatcher.metrics.expiry)
    RenewalChecker(demo.db, demo.clock, KeygenMode.AGENT, lambda _: True, on_expiry_check=alerter).run()
    assert alerter.take_added() == []  # no checked certificate is past a threshold: the alerts are history
    with demo.db.begin() as session:
        assert session.scalar(select(func.count()).select_from(NotificationEvent)) == sum(STATUSES.values())
