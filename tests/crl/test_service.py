"""CRLService on SQLite and PostgreSQL: a persisted, strictly increasing CRL number, staleness by revision
and nextUpdate, expired and short-lived entries left off, failures recorded, one build at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography import x509
from sqlalchemy import select, update

from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.crl.models import CRLGenerationEvent
from certctl.crl.service import CRLGenerationFailed, CRLSnapshot, CRLUnsupported
from certctl.errors import NotFound
from certctl.issuers.models import Issuer, IssuerType
from certctl.revocation.models import CertificateRevocation
from tests.crl.conftest import ISSUER, Ledger, add_foreign_issuer


def serials(snapshot: CRLSnapshot) -> set[int]:
    return {entry.serial_number for entry in x509.load_der_x509_crl(snapshot.der)}


def crl_number(snapshot: CRLSnapshot) -> int:
    crl = x509.load_der_x509_crl(snapshot.der)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_the_crl_number_strictly_increases_and_survives_a_new_context(
    seeded: AppContext, context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    numbers = [seeded.crls.regenerate(ISSUER, "admin").crl_number for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert crl_number(seeded.crls.current(ISSUER)) == 3  # fresh: served from the cache, not rebuilt

    restarted = context_factory(clock)
    assert restarted.crls.current(ISSUER).crl_number == 3
    again = restarted.crls.regenerate(ISSUER, "scheduled")
    assert (again.crl_number, crl_number(again)) == (4, 4)


def test_a_revocation_makes_the_cached_crl_stale_on_every_reader(
    seeded: AppContext, ledger: Ledger, context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    other_replica = context_factory(clock)
    first = seeded.crls.current(ISSUER)
    assert serials(first) == set()
    assert other_replica.crls.current(ISSUER).crl_number == first.crl_number

    serial = ledger.revoke(reason="keyCompromise")
    rebuilt = other_replica.crls.current(ISSUER)
    assert rebuilt.crl_number == first.crl_number + 1
    assert serials(rebuilt) == {serial}
    assert seeded.crls.current(ISSUER).der == rebuilt.der  # the first replica picks up the new row
    entry = next(iter(x509.load_der_x509_crl(rebuilt.der)))
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise


def test_a_crl_past_its_next_update_is_rebuilt(seeded: AppContext, clock: FrozenClock) -> None:
    first = seeded.crls.current(ISSUER)
    assert first.next_update == first.this_update + timedelta(hours=24)
    clock.advance(timedelta(hours=24))
    second = seeded.crls.current(ISSUER)
    assert second.crl_number == first.crl_number + 1
    assert second.this_update == clock.now()


def test_expired_certificates_drop_off_and_short_lived_ones_never_appear(
    seeded: AppContext, ledger: Ledger, clock: FrozenClock
) -> None:
    expiring = ledger.revoke(not_after=clock.now() + timedelta(hours=1))
    lasting = ledger.revoke(reason="superseded")
    ledger.revoke(short_lived=True)
    assert serials(seeded.crls.current(ISSUER)) == {expiring, lasting}

    clock.advance(timedelta(hours=2))
    assert serials(seeded.crls.regenerate(ISSUER, "scheduled")) == {lasting}
    assert seeded.crls.current(ISSUER).revoked_count == 1


def test_unknown_and_foreign_issuers_are_told_apart(seeded: AppContext) -> None:
    add_foreign_issuer(seeded)
    with pytest.raises(NotFound):
        seeded.crls.current("iss-nope")
    with pytest.raises(CRLUnsupported):
        seeded.crls.current("iss-acme")
    with pytest.raises(CRLUnsupported):
        seeded.crls.regenerate("iss-acme", "admin")


def test_a_failed_build_is_recorded_and_the_previous_crl_served_until_it_expires(
    seeded: AppContext, ledger: Ledger, clock: FrozenClock
) -> None:
    good = seeded.crls.regenerate(ISSUER, "admin")
    ledger.revoke()
    with seeded.db.begin() as session:  # a serial no CRL can carry (the ledger API would refuse it)
        session.execute(update(CertificateRevocation).values(serial_number="not-hex"))
    with pytest.raises(CRLGenerationFailed, match="not-hex"):
        seeded.crls.regenerate(ISSUER, "revocation")
    assert seeded.crls.current(ISSUER).der == good.der  # unexpired: still served while rebuilds fail
    with seeded.db.read() as session:
        events = session.scalars(select(CRLGenerationEvent).order_by(CRLGenerationEvent.started_at)).all()
    assert [(event.trigger, event.error is None) for event in events] == [
        ("admin", True),
        ("revocation", False),
        ("read", False),
    ]
    assert "not-hex" in (events[1].error or "")
    clock.advance(timedelta(hours=24))
    with pytest.raises(CRLGenerationFailed):
        seeded.crls.current(ISSUER)
    status = seeded.crls.cache_status()
    assert [(s.issuer_id, s.meta.crl_number if s.meta else None, s.is_stale) for s in status] == [
        (ISSUER, good.crl_number, True)
    ]


def test_regenerate_all_builds_every_enabled_local_ca_and_skips_the_rest(seeded: AppContext) -> None:
    add_foreign_issuer(seeded)
    now = seeded.clock.now()
    with seeded.db.begin() as session:
        session.add(
            Issuer(
                id="iss-off",
                name="off",
                type=IssuerType.GENERIC_CA,
                config={},
                enabled=False,
                created_at=now,
                updated_at=now,
            )
        )
    summary = seeded.crls.regenerate_all("scheduled")
    assert (summary.regenerated, summary.failed, summary.skipped) == (1, 0, 1)
    assert [s.issuer_id for s in seeded.crls.cache_status() if s.meta is not None] == [ISSUER]


def test_the_in_process_copy_is_rechecked_after_a_second(seeded: AppContext, clock: FrozenClock) -> None:
    assert seeded.crls.peek(ISSUER) is None
    snapshot = seeded.crls.current(ISSUER)
    assert seeded.crls.peek(ISSUER) is snapshot
    clock.advance(timedelta(seconds=1))
    assert seeded.crls.peek(ISSUER) is None
    assert seeded.crls.current(ISSUER) is snapshot  # unchanged in the database: the same copy, no rebuild


def test_replicas_building_at_once_never_repeat_a_number(
    seeded: AppContext, context_factory: Callable[..., AppContext], clock: FrozenClock
) -> None:
    replicas = [seeded, context_factory(clock), context_factory(clock)]
    numbers: list[int] = []
    failures: list[BaseException] = []
    guard = threading.Lock()

    def build(context: AppContext) -> None:
        try:
            for _ in range(4):
                number = context.crls.regenerate(ISSUER, "admin").crl_number
                with guard:
                    numbers.append(number)
        except BaseException as exc:  # reported below, with the numbers
            failures.append(exc)

    threads = [threading.Thread(target=build, args=(replica,)) for replica in replicas for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(numbers) == list(range(1, 25))
    assert seeded.crls.current(ISSUER).crl_number == 24
