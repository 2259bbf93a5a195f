"""The scheduler: named loops on threads, each single-flight, with a per-run deadline and, for singleton
loops, a lease so that exactly one replica runs them (core.md §7.1, §7.3).

A tick source decides when loops tick: `IntervalTicks` (one thread per loop, production) or `ManualTicks`
(nothing; tests call `Scheduler.tick`). A tick that finds the previous run of its loop still going is
skipped and counted. `stop(timeout)` stops ticking, cancels every run's deadline and waits for the runs.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.scheduler.deadline import Deadline
from certctl.scheduler.leases import Leases

log = logging.getLogger("certctl.scheduler")

MIN_LEASE_TTL = timedelta(seconds=60)
MAX_LOOP_NAME = 64  # scheduler_leases.name
DEFAULT_DRAIN_TIMEOUT = timedelta(seconds=30)

# A loop body: gets the run's start instant and its deadline, checks `deadline.expired` between batches,
# returns a summary for the logs and stats (or None).
LoopFn = Callable[[datetime, Deadline], object]


@dataclass(frozen=True, slots=True)
class Loop:
    name: str
    interval: timedelta
    timeout: timedelta
    fn: LoopFn
    singleton: bool = False
    run_at_startup: bool = True

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_LOOP_NAME:
            raise ValueError(f"loop name must be 1-{MAX_LOOP_NAME} characters")
        if self.interval <= timedelta(0) or self.timeout <= timedelta(0):
            raise ValueError(f"loop {self.name}: interval and timeout must be positive")

    @property
    def lease_ttl(self) -> timedelta:
        """Twice the interval, at least 60 s (core.md §7.3), and never shorter than one run may take."""
        return max(2 * self.interval, MIN_LEASE_TTL, self.timeout)


class RunStatus(StrEnum):
    """What a tick or a run-now request did; the admin endpoint maps these to HTTP."""

    STARTED = "started"  # 202
    ALREADY_RUNNING = "already_running"  # 409
    LEASE_HELD_ELSEWHERE = "lease_held_elsewhere"  # 409: another replica runs this singleton loop
    LEASE_ERROR = "lease_error"  # 503: the lease could not be read or written
    UNKNOWN_LOOP = "unknown_loop"  # 404
    STOPPED = "stopped"  # 503: the scheduler is draining or stopped


class RunOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOT_RUN = "not_run"  # the tick reserved the loop but did not get its lease


class RunHandle:
    """One run of a loop, to wait on (tests, run-now) or inspect after it ends."""

    def __init__(self, loop: str, manual: bool) -> None:
        self.loop = loop
        self.manual = manual
        self.outcome: RunOutcome | None = None
        self.summary: object = None
        self.error: str | None = None
        self.overran = False
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (at most `timeout` seconds); True when it has ended."""
        return self._done.wait(timeout)

    def _finish(self, outcome: RunOutcome, summary: object = None, error: str | None = None) -> None:
        self.outcome, self.summary, self.error = outcome, summary, error
        self._done.set()


@dataclass(frozen=True, slots=True)
class TickResult:
    status: RunStatus
    loop: str
    run: RunHandle | None = None
    holder: str | None = None  # with LEASE_HELD_ELSEWHERE on run-now: who holds the lease, if known

    @property
    def started(self) -> bool:
        return self.status is RunStatus.STARTED


@dataclass(frozen=True, slots=True)
class LoopStats:
    name: str
    running: bool
    runs_started: int
    runs_succeeded: int
    runs_failed: int
    overlaps_skipped: int
    standby_ticks: int
    deadline_overruns: int
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_error: str | None
    last_summary: object


@dataclass
class _LoopState:
    loop: Loop
    current: RunHandle | None = None
    holds_lease: bool = False
    runs_started: int = 0
    runs_succeeded: int = 0
    runs_failed: int = 0
    overlaps_skipped: int = 0
    standby_ticks: int = 0
    deadline_overruns: int = 0
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_error: str | None = None
    last_summary: object = field(default=None)

    def snapshot(self) -> LoopStats:
        return LoopStats(
            name=self.loop.name,
            running=self.current is not None,
            runs_started=self.runs_started,
            runs_succeeded=self.runs_succeeded,
            runs_failed=self.runs_failed,
            overlaps_skipped=self.overlaps_skipped,
            standby_ticks=self.standby_ticks,
            deadline_overruns=self.deadline_overruns,
            last_started_at=self.last_started_at,
            last_finished_at=self.last_finished_at,
            last_error=self.last_error,
            last_summary=self.last_summary,
        )


class TickSource(Protocol):
    def start(self, loops: Sequence[Loop], fire: Callable[[str], object], stopping: threading.Event) -> None:
        """Begin calling `fire(loop_name)` when loops are due, until `stopping` is set."""
        ...

    def join(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for the tick threads to notice `stopping`."""
        ...


class IntervalTicks:
    """One daemon thread per loop, firing every `interval` after start."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def start(self, loops: Sequence[Loop], fire: Callable[[str], object], stopping: threading.Event) -> None:
        for loop in loops:
            thread = threading.Thread(
                target=self._tick_forever,
                args=(loop, fire, stopping),
                name=f"certctl-ticks-{loop.name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def join(self, timeout: float) -> None:
        ends = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, ends - time.monotonic()))

    @staticmethod
    def _tick_forever(loop: Loop, fire: Callable[[str], object], stopping: threading.Event) -> None:
        while not stopping.wait(loop.interval.total_seconds()):
            fire(loop.name)


class ManualTicks:
    """No ticks of its own: the caller drives the scheduler with `Scheduler.tick(name)`."""

    def start(self, loops: Sequence[Loop], fire: Callable[[str], object], stopping: threading.Event) -> None:
        return None

    def join(self, timeout: float) -> None:
        return None


def default_holder() -> str:
    """This process's name in lease rows: host, pid and a random part (unique across restarts)."""
    return f"{socket.gethostname()[:80]}-{os.getpid()}-{secrets.token_hex(4)}"


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        loops: Sequence[Loop],
        *,
        holder: str | None = None,
        ticks: TickSource | None = None,
    ) -> None:
        names = [loop.name for loop in loops]
        if len(set(names)) != len(names):
            raise ValueError("loop names must be unique")
        self._clock = clock
        self._leases = Leases(db)
        self._ticks: TickSource = ticks if ticks is not None else IntervalTicks()
        self.holder = holder or default_holder()
        self._states = {loop.name: _LoopState(loop) for loop in loops}
        self._mutex = threading.Lock()
        self._stopping = threading.Event()
        self._started = False

    @property
    def loop_names(self) -> list[str]:
        return list(self._states)

    def start(self) -> dict[str, TickResult]:
        """Start ticking and run the `run_at_startup` loops once now; returns those first ticks."""
        with self._mutex:
            if self._started or self._stopping.is_set():
                raise RuntimeError("a scheduler starts once")
            self._started = True
        loops = [state.loop for state in self._states.values()]
        self._ticks.start(loops, self._fire, self._stopping)
        return {loop.name: self.tick(loop.name) for loop in loops if loop.run_at_startup}

    def tick(self, name: str) -> TickResult:
        """One scheduled tick of `name`: start a run unless one is going or another replica holds the lease."""
        return self._begin(name, manual=False)

    def run_now(self, name: str) -> TickResult:
        """Run `name` now on this replica (admin run-now), under the same single-flight and lease rules."""
        return self._begin(name, manual=True)

    def stats(self) -> Mapping[str, LoopStats]:
        with self._mutex:
            return {name: state.snapshot() for name, state in self._states.items()}

    def stop(self, timeout: float | timedelta = DEFAULT_DRAIN_TIMEOUT) -> list[str]:
        """Stop ticking, cancel every run's deadline and wait up to `timeout` for runs to end.

        Returns the loops still running when the time ran out (empty after a clean drain). Leases of loops
        that ended are released so a standby replica can take over at its next tick.
        """
        budget = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        ends = time.monotonic() + budget
        with self._mutex:
            self._stopping.set()
            running = [state.current for state in self._states.values() if state.current is not None]
        self._ticks.join(budget)
        for handle in running:
            handle.wait(max(0.0, ends - time.monotonic()))
        with self._mutex:
            still_running = sorted(name for name, state in self._states.items() if state.current is not None)
            to_release = [name for name, state in self._states.items() if state.holds_lease and state.current is None]
            for name in to_release:
                self._states[name].holds_lease = False
        for name in to_release:
            try:
                self._leases.release(name, self.holder)
            except SQLAlchemyError:
                log.warning("scheduler.lease_release_failed", extra={"loop": name}, exc_info=True)
        if still_running:
            log.warning("scheduler.drain_timeout", extra={"loops": still_running, "timeout_seconds": budget})
        return still_running

    # -- internals -----------------------------------------------------------------------------------------

    def _fire(self, name: str) -> object:
        try:
            return self.tick(name)
        except Exception:
            # The tick thread must outlive any bug in one tick, or the loop silently stops for good.
            log.exception("scheduler.tick_failed", extra={"loop": name})
            return None

    def _begin(self, name: str, *, manual: bool) -> TickResult:
        state = self._states.get(name)
        if state is None:
            return TickResult(RunStatus.UNKNOWN_LOOP, name)
        loop = state.loop
        with self._mutex:
            if self._stopping.is_set():
                return TickResult(RunStatus.STOPPED, name)
            if state.current is not None:
                state.overlaps_skipped += 1
                log.info("scheduler.tick_skipped", extra={"loop": name, "reason": "previous run still going"})
                return TickResult(RunStatus.ALREADY_RUNNING, name)
            # Reserve the loop before the lease round-trip, so a second tick cannot slip in meanwhile.
            handle = RunHandle(name, manual)
            state.current = handle
        if loop.singleton:
            refused = self._take_lease(state, handle, manual)
            if refused is not None:
                return refused
        now = self._clock.now()
        deadline = Deadline(self._clock.monotonic, loop.timeout, self._stopping)
        with self._mutex:
            state.runs_started += 1
            state.last_started_at = now
        thread = threading.Thread(
            target=self._run, args=(state, handle, now, deadline), name=f"certctl-loop-{name}", daemon=True
        )
        thread.start()
        return TickResult(RunStatus.STARTED, name, handle)

    def _take_lease(self, state: _LoopState, handle: RunHandle, manual: bool) -> TickResult | None:
        loop = state.loop
        try:
            held = self._leases.try_acquire(loop.name, self.holder, self._clock.now(), loop.lease_ttl)
            holder = None if held or not manual else self._leases.holder_of(loop.name, self._clock.now())
        except SQLAlchemyError:
            log.warning("scheduler.lease_error", extra={"loop": loop.name}, exc_info=True)
            self._release_reservation(state, handle)
            return TickResult(RunStatus.LEASE_ERROR, loop.name)
        if held:
            with self._mutex:
                state.holds_lease = True
            return None
        with self._mutex:
            state.holds_lease = False
            state.standby_ticks += 1
        self._release_reservation(state, handle)
        log.debug("scheduler.standby", extra={"loop": loop.name})
        return TickResult(RunStatus.LEASE_HELD_ELSEWHERE, loop.name, holder=holder)

    def _release_reservation(self, state: _LoopState, handle: RunHandle) -> None:
        with self._mutex:
            if state.current is handle:
                state.current = None
        handle._finish(RunOutcome.NOT_RUN)

    def _run(self, state: _LoopState, handle: RunHandle, now: datetime, deadline: Deadline) -> None:
        name = state.loop.name
        started = self._clock.monotonic()
        summary: object = None
        error: str | None = None
        try:
            summary = state.loop.fn(now, deadline)
        except Exception as exc:
            # The loop boundary: one failed run is logged and counted, the next tick tries again.
            error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduler.loop_failed", extra={"loop": name})
        overran = deadline.remaining_seconds <= 0 and not deadline.cancelled
        if overran:
            log.warning(
                "scheduler.loop_overran",
                extra={"loop": name, "timeout_seconds": state.loop.timeout.total_seconds()},
            )
        finished_at = self._clock.now()
        with self._mutex:
            state.current = None
            state.last_finished_at = finished_at
            state.deadline_overruns += overran
            if error is None:
                state.runs_succeeded += 1
                state.last_summary = summary
                state.last_error = None
            else:
                state.runs_failed += 1
                state.last_error = error
        handle.overran = overran
        handle._finish(RunOutcome.FAILED if error else RunOutcome.SUCCEEDED, summary, error)
        log.info(
            "scheduler.loop_finished",
            extra={
                "loop": name,
                "outcome": "failed" if error else "succeeded",
                "duration_seconds": round(self._clock.monotonic() - started, 3),
                "summary": summary,
            },
        )
