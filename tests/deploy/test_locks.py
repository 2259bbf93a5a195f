"""Per-target deploy mutexes (§A1.9, A4 #18)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from certctl.deploy.locks import TargetLocks


def test_one_target_admits_one_deploy_at_a_time() -> None:
    locks = TargetLocks()
    inside, peak, guard = 0, 0, threading.Lock()

    def deploy() -> None:
        nonlocal inside, peak
        with locks.holding("tgt-web"):
            with guard:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.005)
            with guard:
                inside -= 1

    with ThreadPoolExecutor(10) as pool:
        for future in [pool.submit(deploy) for _ in range(10)]:
            future.result()
    assert peak == 1


def test_different_targets_have_independent_locks() -> None:
    locks = TargetLocks()
    with locks.holding("tgt-a"):
        b = locks.lock_for("tgt-b")
        assert b is not None
        assert b.acquire(blocking=False)
        b.release()


def test_an_empty_target_id_takes_no_lock() -> None:
    locks = TargetLocks()
    assert locks.lock_for("") is None
    assert locks.lock_for(None) is None
    with locks.holding(""), locks.holding(""):  # not re-entrant locks: this would hang if one were taken
        pass


def test_the_same_id_always_gives_the_same_lock_even_under_concurrent_lookups() -> None:
    locks = TargetLocks()
    with ThreadPoolExecutor(16) as pool:
        found = list(pool.map(lambda _: locks.lock_for("tgt-x"), range(50)))
    assert all(lock is found[0] for lock in found)
