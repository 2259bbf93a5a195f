"""Delivering claimed rows: one rule for every attempt, wherever it comes from (notifications.md §2.10).

The producer's immediate send, the pending processor and the retry sweep all claim rows, send them
through their channel (a batch at a time, concurrently, from a thread pool), then write every outcome and
attempt in one transaction:

* sent → `sent`, `sent_at`, retry_count kept (a row delivered on attempt N keeps N - 1);
* failed, n = retry_count before the attempt < 4 → `failed`, retry_count n + 1, `last_error` verbatim,
  `next_retry_at` = failure time + min(2^n minutes, 1 h): waits of 1, 2, 4 and 8 minutes;
* failed with n ≥ 4 (the 5th failure) → `dead`, retry_count 5, `next_retry_at` cleared;
* channel not configured → `dead` at once with `last_error` naming the variable to set (never `sent`).

A process that dies mid-batch loses nothing: its claims expire and another worker takes the rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.ids import new_id
from certctl.notifications.channels.base import Channel, ChannelName, DeliveryFailed, EventAction, Message, Receipt
from certctl.notifications.metrics import DeliveryMetrics
from certctl.notifications.models import MAX_ATTEMPTS, AttemptOutcome, AttemptTrigger, NotificationType
from certctl.notifications.store import Claimed, Dead, Delivered, NotificationStore, Outcome, Retrying
from certctl.scheduler.deadline import Deadline

log = logging.getLogger("certctl.notifications")

BACKOFF_CAP = timedelta(hours=1)  # the seed's notifRetryBackoffCap
_CHANNEL_NAMES = frozenset(name.value for name in ChannelName)
EXPIRY_TYPE = NotificationType.EXPIRATION_WARNING.value
MAX_ERROR_LENGTH = 65_536  # last_error is TEXT; this only stops a runaway response body


def backoff(retry_count: int) -> timedelta:
    """The wait after a failed attempt made with `retry_count` earlier failures: min(2^n minutes, 1 h)."""
    return min(timedelta(minutes=2 ** min(retry_count, 16)), BACKOFF_CAP)


@dataclass(frozen=True, slots=True)
class DeliverySummary:
    claimed: int = 0
    sent: int = 0
    failed: int = 0  # failed attempts that scheduled a retry
    dead: int = 0
    batches: int = 0
    finished: bool = True  # False when the deadline stopped the run with rows left

    def __add__(self, other: DeliverySummary) -> DeliverySummary:
        return DeliverySummary(
            claimed=self.claimed + other.claimed,
            sent=self.sent + other.sent,
            failed=self.failed + other.failed,
            dead=self.dead + other.dead,
            batches=self.batches + other.batches,
            finished=self.finished and other.finished,
        )


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One send as it happened; becomes an attempt row and the row's outcome."""

    outcome: AttemptOutcome
    attempted_at: datetime
    seconds: float
    error: str | None = None
    http_status: int | None = None
    smtp_reply: str | None = None


def message_of(row: Claimed) -> Message:
    return Message(
        notification_id=row.id,
        type=row.type,
        recipient=row.recipient,
        body=row.message,
        created_at=row.created_at,
        certificate_id=row.certificate_id,
        threshold_days=row.threshold_days,
        action=EventAction.RESOLVE if row.event_action == EventAction.RESOLVE.value else EventAction.TRIGGER,
    )


def attempt_once(
    channels: Mapping[ChannelName, Channel], channel_name: str, message: Message, clock: Clock
) -> AttemptResult:
    """Send `message` once through the named channel; every failure comes back as a result, never raised."""
    attempted_at = clock.now()
    started = time.perf_counter()
    channel = channels.get(ChannelName(channel_name)) if channel_name in _CHANNEL_NAMES else None
    if channel is None:
        error = f"channel {channel_name!r} is not one of {', '.join(channels)}"
        return AttemptResult(AttemptOutcome.NOT_CONFIGURED, attempted_at, time.perf_counter() - started, error)
    missing = channel.missing_setting(message)
    if missing is not None:
        error = f"channel {channel.name} is not configured: set {missing}"
        return AttemptResult(AttemptOutcome.NOT_CONFIGURED, attempted_at, time.perf_counter() - started, error)
    try:
        receipt: Receipt = channel.send(message)
    except DeliveryFailed as exc:
        return AttemptResult(
            AttemptOutcome.FAILURE,
            attempted_at,
            time.perf_counter() - started,
            str(exc)[:MAX_ERROR_LENGTH] or type(exc).__name__,
            exc.http_status,
            exc.smtp_reply,
        )
    except Exception as exc:  # a channel bug must cost an attempt, never the row
        log.exception("channel %s raised while sending %s", channel_name, message.notification_id)
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        return AttemptResult(AttemptOutcome.FAILURE, attempted_at, time.perf_counter() - started, error)
    return AttemptResult(
        AttemptOutcome.SUCCESS,
        attempted_at,
        time.perf_counter() - started,
        http_status=receipt.http_status,
        smtp_reply=receipt.smtp_reply,
    )


class NotificationDispatcher:
    """Claims and delivers rows; shared by producers (immediate), the processor and the retry sweep."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        channels: Mapping[ChannelName, Channel],
        *,
        worker_id: str,
        lease: timedelta,
        batch_size: int = 500,
        concurrency: int = 16,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self._db, self._clock, self._channels = db, clock, channels
        self.worker_id = worker_id
        self._lease, self._batch = lease, batch_size
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="notify-send")
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-now")
        self.metrics = metrics or DeliveryMetrics()

    def close(self) -> None:
        self._background.shutdown(wait=True)
        self._pool.shutdown(wait=True)

    # -- entry points ------------------------------------------------------------------------------

    def deliver(self, ids: Collection[str]) -> DeliverySummary:
        """Send rows a producer has just committed (those another worker already holds are skipped)."""
        wanted = list(ids)
        total = DeliverySummary()
        for start in range(0, len(wanted), self._batch):
            chunk = wanted[start : start + self._batch]

            def claim(store: NotificationStore, now: datetime, chunk: list[str] = chunk) -> list[Claimed]:
                return store.claim_pending(self.worker_id, now, self._lease, len(chunk), ids=chunk)

            total += self._batch_once(claim, AttemptTrigger.IMMEDIATE)
        return total

    def deliver_soon(self, ids: Collection[str]) -> Future[DeliverySummary]:
        """`deliver` on a background thread, so a request never waits on a slow channel.

        If this process dies first, the rows are still pending and the processor sends them.
        """
        return self._background.submit(self._deliver_logged, list(ids))

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until every `deliver_soon` handed over so far has finished (one FIFO worker: a no-op
        queued now runs after all of them)."""
        self._background.submit(lambda: None).result(timeout)

    def process_pending(self, deadline: Deadline) -> DeliverySummary:
        """Every pending row, batch after batch, until none is left or the deadline comes."""

        def claim(store: NotificationStore, now: datetime) -> list[Claimed]:
            return store.claim_pending(self.worker_id, now, self._lease, self._batch)

        return self._drain(claim, AttemptTrigger.PROCESSOR, deadline)

    def retry_failed(self, deadline: Deadline) -> DeliverySummary:
        """Every failed row whose retry is due, oldest due first."""

        def claim(store: NotificationStore, now: datetime) -> list[Claimed]:
            return store.claim_due_retries(self.worker_id, now, self._lease, self._batch)

        return self._drain(claim, AttemptTrigger.RETRY, deadline)

    # -- machinery ---------------------------------------------------------------------------------

    def _deliver_logged(self, ids: list[str]) -> DeliverySummary:
        try:
            return self.deliver(ids)
        except Exception:
            log.exception("immediate delivery of %d notifications failed; the processor will retry", len(ids))
            raise

    def _drain(
        self, claim: Callable[[NotificationStore, datetime], list[Claimed]], trigger: AttemptTrigger, deadline: Deadline
    ) -> DeliverySummary:
        total = DeliverySummary()
        while True:
            if deadline.expired:
                return DeliverySummary(finished=False) + total
            done = self._batch_once(claim, trigger)
            total += done
            if done.claimed < self._batch:
                return total

    def _batch_once(
        self, claim: Callable[[NotificationStore, datetime], list[Claimed]], trigger: AttemptTrigger
    ) -> DeliverySummary:
        with self._db.begin() as session:
            rows = claim(NotificationStore(session), self._clock.now())
        if not rows:
            return DeliverySummary()
        results = list(
            self._pool.map(lambda row: attempt_once(self._channels, row.channel, message_of(row), self._clock), rows)
        )
        return self._record(rows, results, trigger)

    def _record(self, rows: list[Claimed], results: list[AttemptResult], trigger: AttemptTrigger) -> DeliverySummary:
        outcomes: list[Outcome] = []
        attempts: list[dict[str, Any]] = []
        sent = failed = dead = 0
        for row, result in zip(rows, results, strict=True):
            outcome = decide(row, result, self._clock.now())
            outcomes.append(outcome)
            attempts.append(_attempt_row(row, result, trigger, self.worker_id))
            self.metrics.attempt(row.channel, result.outcome, result.seconds)
            self.metrics.outcome(
                row.channel,
                sent=isinstance(outcome, Delivered),
                failed=isinstance(outcome, Retrying),
                dead=isinstance(outcome, Dead),
            )
            if row.type == EXPIRY_TYPE and row.threshold_days is not None:
                result_label = "success" if isinstance(outcome, Delivered) else "failure"
                self.metrics.expiry.record(row.channel, row.threshold_days, result_label)
            sent += isinstance(outcome, Delivered)
            failed += isinstance(outcome, Retrying)
            dead += isinstance(outcome, Dead)
        with self._db.begin() as session:
            store = NotificationStore(session)
            store.record_outcomes(self.worker_id, self._clock.now(), outcomes)
            store.add_attempts(attempts)
        if dead:
            log.warning("%d notification(s) moved to the dead-letter queue", dead)
        return DeliverySummary(claimed=len(rows), sent=sent, failed=failed, dead=dead, batches=1)


def decide(row: Claimed, result: AttemptResult, failed_at: datetime) -> Outcome:
    """The state machine of §2.10 for one attempt on a claimed row."""
    if result.outcome is AttemptOutcome.SUCCESS:
        return Delivered(row.id)
    error = result.error or "delivery failed"
    if result.outcome is AttemptOutcome.NOT_CONFIGURED:
        return Dead(row.id, row.retry_count, error)
    if row.retry_count >= MAX_ATTEMPTS - 1:
        return Dead(row.id, row.retry_count + 1, error)
    return Retrying(row.id, row.retry_count + 1, error, failed_at + backoff(row.retry_count))


def _attempt_row(row: Claimed, result: AttemptResult, trigger: AttemptTrigger, worker: str) -> dict[str, Any]:
    return {
        "id": new_id("nattempt"),
        "notification_id": row.id,
        "attempt_number": row.attempt_count + 1,
        "channel": row.channel,
        "attempted_at": result.attempted_at,
        "duration_ms": round(result.seconds * 1000),
        "outcome": result.outcome.value,
        "error": result.error,
        "http_status": result.http_status,
        "smtp_reply": result.smtp_reply,
        "trigger": trigger.value,
        "worker": worker,
    }
