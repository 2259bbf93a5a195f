"""The main loop (agent-targets-discovery.md §A1.3, core.md §6.2).

At start, at once: one heartbeat and one poll; then heartbeats every `heartbeat_interval` and polls
every `poll_interval`. Each heartbeat or poll failure (no answer, an unexpected status, a body that
does not parse) adds one to `failures`, each success resets it; while `failures > 0` the next poll
comes `failures x poll_interval` later (at most 5 minutes), and a heartbeat that succeeds again
brings the poll forward (reconnect: deliver the outbox, resume claimed work, poll).

Jobs run one after another on the loop's thread. A 410 from any route retires the agent: the loop
returns RETIRED and the process exits 0, so systemd's `Restart=on-failure` leaves it down. SIGTERM or
SIGINT lets the job in progress finish, then stops; claimed jobs not started yet stay journaled and
run at the next start.
"""

from __future__ import annotations

import logging
import threading
from enum import StrEnum

from certctl.agent.client import AgentClient
from certctl.agent.dryrun import DryRun
from certctl.agent.errors import AgentRetired, BadResponse, ServerRejected, ServerUnreachable
from certctl.agent.jobs import JobRunner
from certctl.agent.protocol import HostInfo, WorkItem
from certctl.agent.reporter import Reporter
from certctl.agent.state import Journal
from certctl.clock import Clock, SystemClock

log = logging.getLogger("certctl.agent")

MAX_BACKOFF_SECONDS = 300.0


def backoff_seconds(failures: int, poll_interval_seconds: float, cap_seconds: float = MAX_BACKOFF_SECONDS) -> float:
    """The extra wait before the next poll: `failures x poll interval`, at most `cap_seconds`; 0 when healthy."""
    return min(max(failures, 0) * poll_interval_seconds, cap_seconds)


class LoopExit(StrEnum):
    STOPPED = "stopped"  # SIGTERM/SIGINT
    RETIRED = "retired"  # 410 from the control plane
    DRY_RUN_DONE = "dry_run_done"


class StopSignal:
    """Set by the signal handlers; `wait` is the loop's only sleep, so a stop ends it at once."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when a stop was requested."""
        return self._event.wait(max(seconds, 0.0))


class RetirementSignal:
    """One-shot and race-safe: the first `close` wins and returns True, later ones return False (A4 case 23)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reason: str | None = None

    def close(self, reason: str) -> bool:
        with self._lock:
            if self.reason is not None:
                return False
            self.reason = reason
            return True

    @property
    def closed(self) -> bool:
        return self.reason is not None


class AgentLoop:
    def __init__(
        self,
        *,
        client: AgentClient,
        host: HostInfo,
        jobs: JobRunner,
        reporter: Reporter,
        journal: Journal,
        heartbeat_interval_seconds: float,
        poll_interval_seconds: float,
        clock: Clock | None = None,
        stop: StopSignal | None = None,
        dry_run: DryRun | None = None,
    ) -> None:
        self._client, self._host, self._jobs = client, host, jobs
        self._reporter, self._journal = reporter, journal
        self._heartbeat_every, self._poll_every = heartbeat_interval_seconds, poll_interval_seconds
        self._clock = clock or SystemClock()
        self.stop = stop or StopSignal()
        self._dry_run = dry_run
        self.failures = 0
        self.retirement = RetirementSignal()

    def run(self) -> LoopExit:
        try:
            if self._dry_run is not None:
                return self._run_dry(self._dry_run)
            return self._run()
        except AgentRetired as exc:
            self._retire(exc.reason)
            return LoopExit.RETIRED

    def _run(self) -> LoopExit:
        now = self._clock.monotonic()
        next_heartbeat = next_poll = now
        while not self.stop.is_set():
            now = self._clock.monotonic()
            if now >= next_heartbeat:
                was_failing = self.failures > 0
                if self.heartbeat() and was_failing:
                    next_poll = min(next_poll, now)  # reconnected: deliver and poll now
                next_heartbeat = now + self._heartbeat_every
            if self._clock.monotonic() >= next_poll and not self.stop.is_set():
                self.poll_cycle()
                next_poll = self._clock.monotonic() + self._poll_every + self.next_poll_delay()
            if self.stop.wait(min(next_heartbeat, next_poll) - self._clock.monotonic()):
                break
        log.info("agent stopped", extra={"agent_id": self._client.agent_id})
        return LoopExit.STOPPED

    def next_poll_delay(self) -> float:
        return backoff_seconds(self.failures, self._poll_every)

    def heartbeat(self) -> bool:
        """True on 200. Raises AgentRetired on 410."""
        try:
            self._client.heartbeat(self._host)
        except (ServerUnreachable, ServerRejected, BadResponse) as exc:
            self.failures += 1
            log.warning("agent.heartbeat.failed", extra={"error": str(exc), "failures": self.failures})
            return False
        self._recovered()
        return True

    def _recovered(self) -> None:
        """A call went through: log the reconnection once (heartbeat or poll, whichever came first)."""
        if self.failures:
            log.info("agent.reconnected", extra={"after_failures": self.failures})
        self.failures = 0

    def poll_cycle(self) -> None:
        """Deliver the outbox, resume journaled claimed work, poll, run the jobs. Raises AgentRetired."""
        self._reporter.flush()
        if not self._resume_claimed():
            return
        try:
            items = self._client.poll()
        except (ServerUnreachable, ServerRejected, BadResponse) as exc:
            self.failures += 1
            log.warning("agent.poll.failed", extra={"error": str(exc), "failures": self.failures})
            return
        self._recovered()
        if items:
            log.info("agent.poll.work", extra={"count": len(items)})
        self._journal.forget_csrs_except({item.id for item in items if item.awaits_csr})
        for item in items:
            if item.claimed:  # Running on the server from now on: never lose it
                self._journal.save_work(item.id, item.model_dump(mode="json"))
        self._run_items(items)

    def _resume_claimed(self) -> bool:
        """Run claimed items left by an interrupted batch; False when the server went away meanwhile."""
        items = []
        for raw in self._journal.claimed_work():
            try:
                items.append(WorkItem.model_validate(raw))
            except ValueError:
                continue
        if items:
            log.info("agent.work.resumed", extra={"count": len(items)})
        return self._run_items(items)

    def _run_items(self, items: list[WorkItem]) -> bool:
        for item in items:
            if self.stop.is_set():
                return False  # claimed items stay journaled for the next start
            try:
                self._jobs.run(item)
            except ServerUnreachable as exc:
                self.failures += 1
                log.warning(
                    "agent.job.interrupted",
                    extra={"job_id": item.id, "error": str(exc), "failures": self.failures},
                )
                return False
        return True

    def _run_dry(self, dry_run: DryRun) -> LoopExit:
        self._client.heartbeat(self._host)
        items = self._client.poll(peek=True)
        log.info(f"dry-run: {len(items)} work item(s)", extra={"count": len(items)})
        for item in items:
            dry_run.plan(item)
        return LoopExit.DRY_RUN_DONE

    def _retire(self, reason: str) -> None:
        if self.retirement.close(reason):
            log.warning(
                f"agent retired by control plane ({reason}); exiting with status 0 so the service manager "
                "does not restart it",
                extra={"agent_id": self._client.agent_id, "reason": reason},
            )
