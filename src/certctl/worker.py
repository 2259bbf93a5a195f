"""The background side of a control-plane process: the issuance processor and the periodic loops.

`certctl server` runs them next to the API (unless CERTCTL_SCHEDULER_ENABLED=false); `certctl worker`
runs only them. With several processes on one PostgreSQL, work-claiming loops run everywhere and
singleton loops run under a lease on one process at a time (core.md §7.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from certctl.certificates.processor import IssuanceProcessor, ProcessSummary, mark_certificate_failed
from certctl.certificates.renewal import RenewalChecker, RenewalSummary, ShortLivedSweep, expire_short_lived
from certctl.context import AppContext
from certctl.jobs.service import JobQueue
from certctl.scheduler.deadline import Deadline
from certctl.scheduler.job_loops import job_queue_loops
from certctl.scheduler.runner import Loop, Scheduler, TickSource

JOB_PROCESSOR_LOOP = "job-processor"
RENEWAL_LOOP = "renewal"
SHORT_LIVED_LOOP = "short-lived"


@dataclass
class Background:
    """The scheduler and the pieces it drives (the admin run-now endpoint reaches it through the app)."""

    scheduler: Scheduler
    queue: JobQueue
    processor: IssuanceProcessor


def build_background(context: AppContext, ticks: TickSource | None = None) -> Background:
    settings, clock = context.settings, context.clock
    connectors = context.connectors
    queue = JobQueue(
        context.db,
        clock,
        retry_backoff_cap=settings.job_retry_backoff_cap,
        awaiting_csr_timeout=settings.job_awaiting_csr_timeout,
        awaiting_approval_timeout=settings.job_awaiting_approval_timeout,
        on_terminal_failure=mark_certificate_failed,
    )
    processor = IssuanceProcessor(
        context.db, clock, context.cipher, connectors, queue, batch=settings.renewal_concurrency
    )
    checker = RenewalChecker(context.db, clock, settings.keygen_mode, connectors.has_connector)

    def process_jobs(now: datetime, deadline: Deadline) -> ProcessSummary:
        return processor.run(now, deadline)

    def check_renewals(now: datetime, deadline: Deadline) -> RenewalSummary:
        return checker.run(deadline)

    def expire_short(now: datetime, deadline: Deadline) -> ShortLivedSweep:
        return expire_short_lived(context.db, clock, deadline)

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
        *job_queue_loops(
            queue, retry_interval=settings.scheduler_retry_interval, timeout_interval=settings.job_timeout_interval
        ),
    ]
    scheduler = Scheduler(context.db, clock, loops, ticks=ticks)
    return Background(scheduler=scheduler, queue=queue, processor=processor)
