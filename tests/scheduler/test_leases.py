from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.scheduler.leases import Leases

TTL = timedelta(minutes=2)


def test_a_free_lease_is_taken_and_refused_to_others_until_it_expires(db: Database, clock: FrozenClock) -> None:
    leases = Leases(db)

    assert leases.try_acquire("renewal_check", "replica-a", clock.now(), TTL)
    assert not leases.try_acquire("renewal_check", "replica-b", clock.now(), TTL)
    assert leases.holder_of("renewal_check", clock.now()) == "replica-a"

    clock.advance(TTL)
    assert not leases.try_acquire("renewal_check", "replica-b", clock.now(), TTL)  # lease_until == now: held
    clock.advance(timedelta(seconds=1))
    assert leases.holder_of("renewal_check", clock.now()) is None
    assert leases.try_acquire("renewal_check", "replica-b", clock.now(), TTL)
    assert leases.holder_of("renewal_check", clock.now()) == "replica-b"
    assert not leases.try_acquire("renewal_check", "replica-a", clock.now(), TTL)


def test_the_holder_renews_its_lease(db: Database, clock: FrozenClock) -> None:
    leases = Leases(db)
    assert leases.try_acquire("digest", "replica-a", clock.now(), TTL)
    clock.advance(timedelta(minutes=1, seconds=59))

    assert leases.try_acquire("digest", "replica-a", clock.now(), TTL)
    clock.advance(timedelta(minutes=1))
    assert not leases.try_acquire("digest", "replica-b", clock.now(), TTL)  # renewed: 59 s left


def test_a_released_lease_can_be_taken_at_once_and_only_its_holder_releases_it(
    db: Database, clock: FrozenClock
) -> None:
    leases = Leases(db)
    leases.try_acquire("crl", "replica-a", clock.now(), TTL)

    assert not leases.release("crl", "replica-b")
    assert leases.release("crl", "replica-a")
    assert leases.try_acquire("crl", "replica-b", clock.now(), TTL)
    with pytest.raises(ValueError, match="positive"):
        leases.try_acquire("crl", "replica-b", clock.now(), timedelta(0))


def test_replicas_racing_for_a_new_lease_leave_exactly_one_holder(db: Database, clock: FrozenClock) -> None:
    leases = Leases(db)
    start = threading.Barrier(6)
    won: list[str] = []
    errors: list[BaseException] = []

    def contend(holder: str) -> None:
        try:
            start.wait(timeout=10)
            if leases.try_acquire("network_scan", holder, clock.now(), TTL):
                won.append(holder)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(f"replica-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(won) == 1
    assert leases.holder_of("network_scan", clock.now()) == won[0]
