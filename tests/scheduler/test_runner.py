from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.scheduler.deadline import Deadline
from certctl.scheduler.runner import (
    IntervalTicks,
    Loop,
    ManualTicks,
    RunHandle,
    RunOutcome,
    RunStatus,
    Scheduler,
    TickResult,
)

WAIT = 5.0  # seconds: an upper bound for thread hand-offs, never reached when things work
MINUTE = timedelta(minutes=1)


class Gate:
    """A loop body that reports it has started and holds until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.runs = 0

    def __call__(self, now: datetime, deadline: Deadline) -> int:
        self.runs += 1
        self.entered.set()
        assert self.opened.wait(WAIT)
        return self.runs


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    """Schedulers a test builds are drained at its end, so no loop thread outlives it."""
    built: list[Scheduler] = []
    yield built
    for scheduler in built:
        scheduler.stop(timeout=WAIT)


def _scheduler(
    built: list[Scheduler], db: Database, clock: FrozenClock, *loops: Loop, holder: str = "replica-a"
) -> Scheduler:
    scheduler = Scheduler(db, clock, loops, holder=holder, ticks=ManualTicks())
    built.append(scheduler)
    return scheduler


def _started(result: TickResult) -> RunHandle:
    assert result.status is RunStatus.STARTED
    assert result.run is not None
    return result.run


def _finished(result: TickResult) -> RunHandle:
    run = _started(result)
    assert run.wait(WAIT)
    return run


def test_an_overlapping_tick_is_skipped_and_counted(
    schedulers: list[Scheduler], local_db: Database, clock: FrozenClock
) -> None:
    gate = Gate()
    scheduler = _scheduler(schedulers, local_db, clock, Loop("slow", MINUTE, MINUTE, gate))

    first = _started(scheduler.tick("slow"))
    assert gate.entered.wait(WAIT)
    assert scheduler.tick("slow").status is RunStatus.ALREADY_RUNNING
    assert scheduler.run_now("slow").status is RunStatus.ALREADY_RUNNING
    assert scheduler.stats()["slow"].overlaps_skipped == 2
    assert scheduler.stats()["slow"].running

    gate.opened.set()
    assert first.wait(WAIT)
    assert (first.outcome, first.summary) == (RunOutcome.SUCCEEDED, 1)
    _finished(scheduler.tick("slow"))
    stats = scheduler.stats()["slow"]
    assert (stats.runs_started, stats.runs_succeeded, stats.last_summary, stats.running) == (2, 2, 2, False)


def test_run_now_starts_a_known_idle_loop_and_names_the_other_cases(
    schedulers: list[Scheduler], local_db: Database, clock: FrozenClock
) -> None:
    scheduler = _scheduler(schedulers, local_db, clock, Loop("quick", MINUTE, MINUTE, lambda now, deadline: "ok"))

    run = _finished(scheduler.run_now("quick"))
    assert (run.manual, run.summary) == (True, "ok")
    assert scheduler.run_now("nope").status is RunStatus.UNKNOWN_LOOP
    scheduler.stop(timeout=WAIT)
    assert scheduler.run_now("quick").status is RunStatus.STOPPED


def test_each_run_gets_a_deadline_its_loop_checks_between_batches(
    schedulers: list[Scheduler], local_db: Database, clock: FrozenClock
) -> None:
    def batches(now: datetime, deadline: Deadline) -> int:
        done = 0
        while not deadline.expired and done < 10:
            clock.advance(timedelta(seconds=40))  # one batch's worth of time
            done += 1
        return done

    scheduler = _scheduler(schedulers, local_db, clock, Loop("batched", MINUTE, timedelta(minutes=2), batches))

    run = _finished(scheduler.tick("batched"))

    assert (run.summary, run.overran) == (3, True)
    assert scheduler.stats()["batched"].deadline_overruns == 1


def test_a_failing_run_is_counted_and_the_next_tick_runs_again(
    schedulers: list[Scheduler], local_db: Database, clock: FrozenClock
) -> None:
    calls: list[datetime] = []

    def flaky(now: datetime, deadline: Deadline) -> str:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return "recovered"

    scheduler = _scheduler(schedulers, local_db, clock, Loop("flaky", MINUTE, MINUTE, flaky))

    failed = _finished(scheduler.tick("flaky"))
    assert (failed.outcome, failed.error) == (RunOutcome.FAILED, "RuntimeError: database went away")
    assert scheduler.stats()["flaky"].last_error == "RuntimeError: database went away"
    clock.advance(MINUTE)
    assert _finished(scheduler.tick("flaky")).summary == "recovered"
    stats = scheduler.stats()["flaky"]
    assert (stats.runs_failed, stats.runs_succeeded, stats.last_error) == (1, 1, None)
    assert calls == [clock.now() - MINUTE, clock.now()]


def test_stop_reports_loops_still_running_when_the_drain_times_out(
    schedulers: list[Scheduler], local_db: Database, clock: FrozenClock
) -> None:
    gate = Gate()
    scheduler = _scheduler(schedulers, local_db, clock, Loop("stuck", MINUTE, MINUTE, gate))
    run = _started(scheduler.tick("stuck"))
    assert gate.entered.wait(WAIT)

    assert scheduler.stop(timeout=0.05) == ["stuck"]
    assert scheduler.tick("stuck").status is RunStatus.STOPPED

    gate.opened.set()
    assert run.wait(WAIT)
    assert scheduler.stop(timeout=0) == []


def test_stop_cancels_deadlines_so_cooperative_loops_end_and_the_drain_is_clean(
    schedulers: list[Scheduler], local_db: Database, clock: FrozenClock
) -> None:
    entered = threading.Event()

    def patient(now: datetime, deadline: Deadline) -> bool:
        entered.set()
        return deadline.pause(WAIT)  # True: woken by the drain

    scheduler = _scheduler(schedulers, local_db, clock, Loop("patient", MINUTE, timedelta(hours=1), patient))
    run = _started(scheduler.tick("patient"))
    assert entered.wait(WAIT)

    assert scheduler.stop(timeout=WAIT) == []
    assert (run.done, run.summary, run.overran) == (True, True, False)


def test_start_runs_the_startup_loops_once(schedulers: list[Scheduler], local_db: Database, clock: FrozenClock) -> None:
    scheduler = _scheduler(
        schedulers,
        local_db,
        clock,
        Loop("at_startup", MINUTE, MINUTE, lambda now, deadline: "first"),
        Loop("later", MINUTE, MINUTE, lambda now, deadline: "never", run_at_startup=False),
    )

    first = scheduler.start()

    assert list(first) == ["at_startup"]
    assert _finished(first["at_startup"]).summary == "first"
    assert scheduler.stats()["later"].runs_started == 0
    with pytest.raises(RuntimeError):
        scheduler.start()


def test_interval_ticks_fire_each_loop_until_stopped(local_db: Database, clock: FrozenClock) -> None:
    ticked = threading.Event()
    runs: list[datetime] = []

    def count(now: datetime, deadline: Deadline) -> None:
        runs.append(now)
        if len(runs) >= 3:
            ticked.set()

    loop = Loop("fast", timedelta(milliseconds=5), MINUTE, count, run_at_startup=False)
    scheduler = Scheduler(local_db, clock, [loop], holder="replica-a", ticks=IntervalTicks())
    scheduler.start()
    try:
        assert ticked.wait(WAIT)
    finally:
        assert scheduler.stop(timeout=WAIT) == []
    assert len(runs) >= 3


def test_loops_are_validated_and_leases_outlive_two_intervals() -> None:
    def noop(now: datetime, deadline: Deadline) -> None:
        return None

    assert Loop("a", timedelta(seconds=10), timedelta(seconds=5), noop).lease_ttl == timedelta(seconds=60)
    assert Loop("a", timedelta(hours=1), timedelta(minutes=5), noop).lease_ttl == timedelta(hours=2)
    assert Loop("a", timedelta(seconds=30), timedelta(minutes=5), noop).lease_ttl == timedelta(minutes=5)
    with pytest.raises(ValueError, match="positive"):
        Loop("a", timedelta(0), MINUTE, noop)
    with pytest.raises(ValueError, match="characters"):
        Loop("x" * 65, MINUTE, MINUTE, noop)


def test_a_singleton_loop_runs_on_one_scheduler_at_a_time(
    schedulers: list[Scheduler], db: Database, clock: FrozenClock
) -> None:
    runs: list[str] = []

    def loop_for(replica: str) -> Loop:
        return Loop("renewal_check", timedelta(seconds=20), MINUTE, lambda now, d: runs.append(replica), singleton=True)

    a = _scheduler(schedulers, db, clock, loop_for("a"), holder="replica-a")
    b = _scheduler(schedulers, db, clock, loop_for("b"), holder="replica-b")

    _finished(a.tick("renewal_check"))
    assert b.tick("renewal_check").status is RunStatus.LEASE_HELD_ELSEWHERE
    refused = b.run_now("renewal_check")
    assert (refused.status, refused.holder) == (RunStatus.LEASE_HELD_ELSEWHERE, "replica-a")
    assert b.stats()["renewal_check"].standby_ticks == 2

    clock.advance(timedelta(seconds=61))  # a stopped ticking (crashed): its 60 s lease runs out
    _finished(b.tick("renewal_check"))
    assert a.tick("renewal_check").status is RunStatus.LEASE_HELD_ELSEWHERE

    assert b.stop(timeout=WAIT) == []  # a clean drain hands the lease back at once
    _finished(a.tick("renewal_check"))
    assert runs == ["a", "b", "a"]
