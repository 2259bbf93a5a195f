"""The background side of a control-plane process: the issuance processor and the periodic loops.

`certctl server` runs them next to the API (unless CERTCTL_SCHEDULER_ENABLED=false); `certctl worker`
runs only them. With several processes on one PostgreSQL, work-claiming loops run everywhere and
singleton loops run under a lease on one process at a time (core.md §7.3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from certctl.agents.deployments import queue_issued_deployments
from certctl.certificates.models import ManagedCertificate
from certctl.certificates.processor import IssuanceProcessor, ProcessSummary, mark_certificate_failed
from certctl.certificates.renewal import RenewalChecker, RenewalSummary, ShortLivedSweep, expire_short_lived
from certctl.context import AppContext
from certctl.crl.service import RefreshSummary
from certctl.jobs.models import Job
from certctl.jobs.service import JobQueue
from certctl.notifications.delivery import DeliverySummary
from certctl.notifications.digest import digest_loops
from certctl.notifications.expiry import ExpiryAlerter
from certctl.notifications.lifecycle import LifecycleNotifier
from certctl.scheduler.deadline import Deadline
from certctl.scheduler.job_loops import job_queue_loops
from certctl.scheduler.runner import Loop, Scheduler, TickSource
from certctl.stats.service import StatsService

JOB_PROCESSOR_LOOP = "job-processor"
# Under a stream of creates the job processor gathers this long before claiming again (IssuanceProcessor):
# batches grow from a few jobs to dozens, and each certificate costs far less CPU; a lone job never waits.
ISSUANCE_LINGER = timedelta(milliseconds=50)
RENEWAL_LOOP = "renewal"
SHORT_LIVED_LOOP = "short-lived"
NOTIFICATION_PROCESSOR_LOOP = "notification-processor"
NOTIFICATION_RETRY_LOOP = "notification-retry"
STATS_FOLD_LOOP = "stats-fold"
AGENT_HEALTH_LOOP = "agent-health"
CRL_REFRESH_LOOP = "crl-refresh"
STATS_FOLD_INTERVAL = timedelta(minutes=1)


@dataclass
class Background:
    """The scheduler and the pieces it drives (the admin run-now endpoint reaches it through the app)."""

    scheduler: Scheduler
    queue: JobQueue
    processor: IssuanceProcessor


def build_background(context: AppContext, ticks: TickSource | None = None) -> Background:
    settings, clock = context.settings, context.clock
    connectors = context.connectors
    dispatcher = context.notifications.dispatcher
    lifecycle = LifecycleNotifier(clock, webhook_configured=bool(settings.webhook_url))
    alerter = ExpiryAlerter(clock, dispatcher.metrics.expiry)

    def fail_terminally(session: Session, job: Job, now: datetime) -> None:
        mark_certificate_failed(session, job, now)
        lifecycle.renewal_failed(session, job, now)

    queue = JobQueue(
        context.db,
        clock,
        retry_backoff_cap=settings.job_retry_backoff_cap,
        awaiting_csr_timeout=settings.job_awaiting_csr_timeout,
        awaiting_approval_timeout=settings.job_awaiting_approval_timeout,
        on_terminal_failure=fail_terminally,
    )

    def issued(session: Session, done: Sequence[tuple[ManagedCertificate, Job]]) -> None:
        lifecycle.renewed(session, done)
        # Server keygen: the agents pick up key and certificate of the version each job produced.
        queue_issued_deployments(session, done, clock.now())

    processor = IssuanceProcessor(
        context.db,
        clock,
        context.cipher,
        connectors,
        queue,
        batch=settings.renewal_concurrency,
        linger=ISSUANCE_LINGER,
        on_issued=issued,
    )
    checker = RenewalChecker(context.db, clock, settings.keygen_mode, connectors.has_connector, on_expiry_check=alerter)

    # Producers add rows in their own transactions; each loop hands them to the dispatcher once they have
    # committed (rows a crash leaves behind are pending, and the notification processor sends them).
    def process_jobs(now: datetime, deadline: Deadline) -> ProcessSummary:
        try:
            return processor.run(now, deadline)
        finally:
            dispatcher.deliver_soon(lifecycle.take_added())

    def check_renewals(now: datetime, deadline: Deadline) -> RenewalSummary:
        try:
            return checker.run(deadline)
        finally:
            dispatcher.deliver(alerter.take_added())

    def expire_short(now: datetime, deadline: Deadline) -> ShortLivedSweep:
        return expire_short_lived(context.db, clock, deadline)

    stats = StatsService(context.db, clock, started_at=context.started_at)

    def fold_counts(now: datetime, deadline: Deadline) -> int:
        return stats.fold_counts()

    def refresh_crls(now: datetime, deadline: Deadline) -> RefreshSummary:
        return context.crls.regenerate_all("scheduled", deadline)

    def check_agent_health(now: datetime, deadline: Deadline) -> int:
        return context.agents.mark_silent_offline(settings.scheduler_agent_health_check_interval)

    def process_notifications(now: datetime, deadline: Deadline) -> DeliverySummary:
        return dispatcher.process_pending(deadline)

    def retry_notifications(now: datetime, deadline: Deadline) -> DeliverySummary:
        return dispatcher.retry_failed(deadline)

    loops = [
        Loop(JOB_PROCESSOR_LOOP, settings.scheduler_job_processor_interval, timedelta(minutes=2), process_jobs),
        Loop(
            RENEWAL_LOOP,
            settings.scheduler_renewal_check_interval,
            timedelta(minutes=5),
            check_renewals,
            singleton=True,
        ),
        Loop(
            SHORT_LIVED_LOOP,
            settings.short_lived_expiry_check_interval,
            timedelta(seconds=30),
            expire_short,
            singleton=True,
        ),
        Loop(
            AGENT_HEALTH_LOOP,
            settings.scheduler_agent_health_check_interval,
            timedelta(minutes=1),
            check_agent_health,
            singleton=True,
        ),
        # Every CRL-capable issuer, on one replica; not at startup (pki.md §A2.3): reads rebuild stale CRLs.
        Loop(
            CRL_REFRESH_LOOP,
            settings.crl_generation_interval,
            timedelta(minutes=5),
            refresh_crls,
            singleton=True,
            run_at_startup=False,
        ),
        # The dashboard's kept counts are folded even when nobody reads them (stats/store.py fold_counts).
        Loop(STATS_FOLD_LOOP, STATS_FOLD_INTERVAL, timedelta(seconds=30), fold_counts, singleton=True),
        # Every replica runs both notification loops: rows are claimed one by one (notifications.md §3).
        Loop(
            NOTIFICATION_PROCESSOR_LOOP,
            settings.scheduler_notification_process_interval,
            timedelta(minutes=1),
            process_notifications,
        ),
        Loop(NOTIFICATION_RETRY_LOOP, settings.notification_retry_interval, timedelta(minutes=2), retry_notifications),
        *job_queue_loops(
            queue, retry_interval=settings.scheduler_retry_interval, timeout_interval=settings.job_timeout_interval
        ),
        *digest_loops(context),  # only when CERTCTL_DIGEST_ENABLED and SMTP are set (notifications.md §10)
    ]
    scheduler = Scheduler(context.db, clock, loops, ticks=ticks)
    return Background(scheduler=scheduler, queue=queue, processor=processor)
