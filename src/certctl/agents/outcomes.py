"""What ending an agent-side attempt needs besides the database: how failures back off, and where the
notifications it queues go once committed. Shared by the CSR signer and the status reports."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from certctl.certificates.processor import mark_certificate_failed
from certctl.clock import Clock
from certctl.deploy.metrics import DeployCounters
from certctl.jobs.models import Job
from certctl.jobs.queue import (
    DEFAULT_RETRY_CAP,
    AttemptOutcome,
    count_waiting_attempt,
    record_failure,
    record_terminal_failure,
)
from certctl.notifications.lifecycle import LifecycleNotifier

Notify = Callable[[Collection[str]], object]


@dataclass(frozen=True, slots=True)
class Outcomes:
    notify: Notify  # the dispatcher's deliver_soon: called with the ids of committed notification rows
    webhook_configured: bool = False
    retry_backoff_cap: timedelta = DEFAULT_RETRY_CAP
    counters: DeployCounters = field(default_factory=DeployCounters)  # the server's deploy counters

    def notifier(self, clock: Clock) -> LifecycleNotifier:
        return LifecycleNotifier(clock, webhook_configured=self.webhook_configured)

    def send(self, notifier: LifecycleNotifier) -> None:
        """After the commit: hand the rows the notifier queued to the dispatcher."""
        if added := notifier.take_added():
            self.notify(added)

    def fail_waiting_issuance(
        self,
        session: Session,
        job: Job,
        error: str,
        now: datetime,
        retry_base: timedelta,
        notifier: LifecycleNotifier,
        *,
        permanent: bool = False,
    ) -> AttemptOutcome:
        """An AwaitingCSR job's attempt failed (no CSR could be made, or it could not be signed): one
        counted attempt, retried like any other unless `permanent`; for good → certificate Failed and a
        RenewalFailure notification."""
        count_waiting_attempt(job)
        job.started_at = now
        if permanent:
            outcome = record_terminal_failure(job, error, now)
        else:
            outcome = record_failure(job, error, now, retry_base, self.retry_backoff_cap)
        if outcome is AttemptOutcome.FAILED_TERMINAL:
            mark_certificate_failed(session, job, now)
            notifier.renewal_failed(session, job, now)
        return outcome
