"""The delivery state machine against a real HTTP sink, with time moved by the injected clock.

Every failed attempt, the very first included, schedules a retry after min(2^n minutes, 1 h); the 5th
failure moves the row to the dead-letter queue; an unconfigured channel is dead at once, never `sent`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.notifications.delivery import backoff
from certctl.notifications.models import AttemptOutcome, NotificationStatus
from certctl.scheduler.deadline import Deadline
from tests.notifications.peers import HttpSink
from tests.notifications.rows import attempts, enqueue, row


@pytest.fixture
def notifying(context_factory: Callable[..., AppContext], clock: FrozenClock, http_sink: HttpSink) -> AppContext:
    return context_factory(clock, webhook_url=http_sink.url, outbound_allow_loopback=True)


def retry_sweep(context: AppContext) -> None:
    context.notifications.dispatcher.retry_failed(Deadline.never())


def test_backoff_doubles_from_one_minute_and_caps_at_one_hour() -> None:
    assert [backoff(n) for n in range(8)] == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60)]


def test_a_delivered_row_is_sent_with_one_attempt(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    [nid] = enqueue(notifying)
    summary = notifying.notifications.dispatcher.deliver([nid])

    assert summary.sent == 1
    sent = row(notifying, nid)
    assert (sent.status, sent.retry_count, sent.attempt_count, sent.sent_at) == ("sent", 0, 1, clock.now())
    assert sent.claimed_by is None
    assert sent.next_retry_at is None
    assert http_sink.requests[0].json["event_id"] == nid
    [attempt] = attempts(notifying, nid)
    assert (attempt.outcome, attempt.trigger, attempt.http_status, attempt.attempt_number) == (
        "success",
        "immediate",
        200,
        1,
    )


def test_the_first_failure_enters_the_retry_loop(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    http_sink.respond(503, "upstream busy")
    [nid] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([nid])

    failed = row(notifying, nid)
    assert failed.status == NotificationStatus.FAILED
    assert failed.retry_count == 1
    assert failed.next_retry_at == clock.now() + timedelta(minutes=1)
    assert failed.last_error is not None
    assert "503" in failed.last_error
    assert "upstream busy" in failed.last_error
    assert failed.error == failed.last_error
    assert failed.sent_at is None
    [attempt] = attempts(notifying, nid)
    assert (attempt.outcome, attempt.http_status) == ("failure", 503)


def test_full_schedule_1_2_4_8_minutes_then_dead_after_five_attempts(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    http_sink.respond(500, "boom")
    [nid] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([nid])

    for expected_wait in (1, 2, 4, 8):
        current = row(notifying, nid)
        assert current.status == "failed"
        assert current.next_retry_at == clock.now() + timedelta(minutes=expected_wait)
        # Not due a second early: the sweep leaves it alone.
        clock.advance(timedelta(minutes=expected_wait) - timedelta(seconds=1))
        retry_sweep(notifying)
        assert row(notifying, nid).attempt_count == current.attempt_count
        clock.advance(timedelta(seconds=1))
        retry_sweep(notifying)

    dead = row(notifying, nid)
    assert dead.status == NotificationStatus.DEAD
    assert (dead.retry_count, dead.attempt_count, dead.next_retry_at) == (5, 5, None)
    assert "boom" in (dead.last_error or "")
    history = attempts(notifying, nid)
    assert [a.attempt_number for a in history] == [1, 2, 3, 4, 5]
    assert [a.trigger for a in history] == ["immediate", "retry", "retry", "retry", "retry"]
    assert len(http_sink.requests) == 5
    # A dead row is out of the sweep for good.
    clock.advance(timedelta(days=1))
    retry_sweep(notifying)
    assert len(http_sink.requests) == 5


def test_success_on_the_third_attempt_keeps_the_failure_count(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    http_sink.script([503, 502, 200])
    [nid] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([nid])
    clock.advance(timedelta(minutes=1))
    retry_sweep(notifying)
    clock.advance(timedelta(minutes=2))
    retry_sweep(notifying)

    sent = row(notifying, nid)
    assert (sent.status, sent.retry_count, sent.attempt_count) == ("sent", 2, 3)
    assert sent.next_retry_at is None
    assert sent.sent_at == clock.now()
    assert [a.outcome for a in attempts(notifying, nid)] == ["failure", "failure", "success"]


def test_an_unconfigured_channel_goes_dead_at_once_naming_the_setting(
    notifying: AppContext, http_sink: HttpSink
) -> None:
    [nid] = enqueue(notifying, channel="Slack")
    notifying.notifications.dispatcher.deliver([nid])

    dead = row(notifying, nid)
    assert dead.status == "dead"
    assert dead.retry_count == 0
    assert dead.next_retry_at is None
    assert dead.last_error == "channel Slack is not configured: set CERTCTL_SLACK_WEBHOOK_URL"
    [attempt] = attempts(notifying, nid)
    assert attempt.outcome == AttemptOutcome.NOT_CONFIGURED
    assert http_sink.requests == []


def test_an_unknown_channel_name_is_dead_not_sent(notifying: AppContext) -> None:
    [nid] = enqueue(notifying, channel="email")  # legacy lower-case spelling
    notifying.notifications.dispatcher.deliver([nid])
    dead = row(notifying, nid)
    assert dead.status == "dead"
    assert "'email' is not one of" in (dead.last_error or "")


def test_one_channel_failing_never_blocks_another(
    context_factory: Callable[..., AppContext], clock: FrozenClock, http_sink: HttpSink
) -> None:
    slack = HttpSink().start()
    try:
        context = context_factory(
            clock, webhook_url=http_sink.url, slack_webhook_url=slack.url, outbound_allow_loopback=True
        )
        http_sink.respond(503)
        webhook_ids = enqueue(context, 3)
        slack_ids = enqueue(context, 3, channel="Slack")
        teams_ids = enqueue(context, 1, channel="Teams")
        summary = context.notifications.dispatcher.process_pending(Deadline.never())
    finally:
        slack.stop()

    assert (summary.sent, summary.failed, summary.dead) == (3, 3, 1)
    assert {row(context, i).status for i in webhook_ids} == {"failed"}
    assert {row(context, i).status for i in slack_ids} == {"sent"}
    assert {row(context, i).status for i in teams_ids} == {"dead"}
    assert len(slack.requests) == 3


def test_processor_drains_every_pending_row_in_batches(
    context_factory: Callable[..., AppContext], clock: FrozenClock, http_sink: HttpSink
) -> None:
    context = context_factory(clock, webhook_url=http_sink.url, outbound_allow_loopback=True, notification_batch_size=7)
    ids = enqueue(context, 30)
    summary = context.notifications.dispatcher.process_pending(Deadline.never())
    assert (summary.claimed, summary.sent, summary.batches) == (30, 30, 5)
    assert sorted(r.json["event_id"] for r in http_sink.requests) == sorted(ids)


def test_a_row_held_by_a_live_claim_is_left_alone_until_the_lease_expires(
    context_factory: Callable[..., AppContext], clock: FrozenClock, http_sink: HttpSink
) -> None:
    from certctl.notifications.store import NotificationStore

    context = context_factory(clock, webhook_url=http_sink.url, outbound_allow_loopback=True)
    [nid] = enqueue(context)
    with context.db.begin() as session:  # a replica claimed it, then died mid-send
        NotificationStore(session).claim_pending("dead-replica", clock.now(), timedelta(minutes=5), 10)

    assert context.notifications.dispatcher.process_pending(Deadline.never()).claimed == 0
    clock.advance(timedelta(minutes=5, seconds=1))
    assert context.notifications.dispatcher.process_pending(Deadline.never()).sent == 1
    assert row(context, nid).status == "sent"


def test_a_late_result_after_a_requeue_changes_nothing(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    """The outcome write repeats `claimed_by = me`: an operator's requeue mid-send wins."""
    from certctl.notifications.store import Delivered, NotificationStore

    http_sink.respond(503)
    [nid] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([nid])
    clock.advance(timedelta(minutes=1))
    with notifying.db.begin() as session:
        NotificationStore(session).claim_due_retries("replica-a", clock.now(), timedelta(minutes=5), 10)
    with notifying.db.begin() as session:
        NotificationStore(session).requeue(nid)
    with notifying.db.begin() as session:
        NotificationStore(session).record_outcomes("replica-a", clock.now(), [Delivered(nid)])
    requeued = row(notifying, nid)
    assert (requeued.status, requeued.retry_count, requeued.last_error) == ("pending", 0, None)


def test_message_bodies_neutralise_line_forging_characters() -> None:
    from certctl.notifications import messages

    body = messages.renewal_failure_body("evil.example.com\r\nBcc: x@evil\u202e", "boom\x00\nInjected: yes")
    assert body == (
        "The certificate for evil.example.com Bcc: x@evil failed to renew.\n\nError: boom Injected: yes\n\n"
        "Please investigate."
    )
