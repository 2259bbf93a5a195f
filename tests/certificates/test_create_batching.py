"""Creates written together (group commit): each answers as it would alone, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from certctl.audit.models import AuditEvent
from certctl.certificates.creation import BatchReferences
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.certificates.service import CertificateService, CertificateSpec, CertificateView
from certctl.clock import FrozenClock
from certctl.config import KeygenMode
from certctl.context import AppContext
from certctl.errors import AlreadyExists, Conflict, ValidationFailed
from certctl.jobs.models import Job, JobStatus
from certctl.security.roles import SYSTEM_ACTOR
from tests.factories import add_profile, seed_inventory

REFS = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


def spec(name: str, **extra: Any) -> CertificateSpec:
    return CertificateSpec(**({"name": name, "common_name": f"{name}.example.com"} | REFS | extra))


@pytest.fixture
def service(context_factory: Any) -> tuple[CertificateService, AppContext]:
    context: AppContext = context_factory(FrozenClock())
    seed_inventory(context)
    return CertificateService(context.db, context.clock, KeygenMode.SERVER), context


def rows_of(context: AppContext, cert_id: str) -> tuple[list[Job], list[str]]:
    with context.db.begin() as session:
        jobs = list(session.scalars(select(Job).where(Job.certificate_id == cert_id)))
        actions = sorted(session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == cert_id)))
        return jobs, actions


def test_a_batch_answers_as_the_same_creates_one_after_another(service: Any) -> None:
    certificates, context = service
    add_profile(context, "prof-gated", requires_approval=True)
    outcomes = certificates.create_many(
        [
            (spec("web"), SYSTEM_ACTOR),
            (spec("web", common_name="other.example.com"), SYSTEM_ACTOR),  # the first took the name
            (spec("nobody", owner_id="o-nobody"), SYSTEM_ACTOR),
            (spec("no-policy", renewal_policy_id="rp-nope"), SYSTEM_ACTOR),
            (spec("no-profile", certificate_profile_id="prof-nope"), SYSTEM_ACTOR),
            (spec("bad-cn", common_name="bad host!"), SYSTEM_ACTOR),
            (spec("fixed", id="mc-fixed"), SYSTEM_ACTOR),
            (spec("fixed-again", id="mc-fixed"), SYSTEM_ACTOR),  # the ID is taken by the one before
            (spec("bad-cn", common_name="bad-cn.example.com"), SYSTEM_ACTOR),  # the failed one did not take it
            (spec("gated", certificate_profile_id="prof-gated"), SYSTEM_ACTOR),
            (spec("inventory", status=CertificateStatus.ACTIVE), SYSTEM_ACTOR),
        ]
    )
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == [
        "CertificateView",
        "AlreadyExists",
        "ValidationFailed",
        "ValidationFailed",
        "ValidationFailed",
        "ValidationFailed",
        "CertificateView",
        "Conflict",
        "CertificateView",
        "CertificateView",
        "CertificateView",
    ]
    assert "owner_id 'o-nobody' does not exist" in str(outcomes[2])
    assert "renewal_policy_id 'rp-nope'" in str(outcomes[3])
    assert "certificate_profile_id 'prof-nope'" in str(outcomes[4])
    assert str(outcomes[7]) == "certificate mc-fixed already exists"
    web, fixed, bad_cn, gated, inventory = (outcomes[i] for i in (0, 6, 8, 9, 10))
    assert isinstance(web, CertificateView)
    assert isinstance(gated, CertificateView)
    assert isinstance(inventory, CertificateView)
    assert isinstance(fixed, CertificateView)
    assert fixed.certificate.id == "mc-fixed"
    assert web.certificate.status is CertificateStatus.RENEWAL_IN_PROGRESS
    assert gated.certificate.status is CertificateStatus.PENDING
    assert inventory.certificate.status is CertificateStatus.ACTIVE
    for view in (web, fixed, bad_cn):
        assert isinstance(view, CertificateView)
        (job,), actions = rows_of(context, view.certificate.id)
        assert (job.status, job.max_attempts) == (JobStatus.PENDING, 4)
        assert actions == ["certificate_created", "renewal_job_created"]
    assert rows_of(context, gated.certificate.id)[0][0].status is JobStatus.AWAITING_APPROVAL
    assert rows_of(context, inventory.certificate.id) == ([], ["certificate_created"])
    with context.db.begin() as session:
        assert session.scalar(select(func.count()).select_from(ManagedCertificate)) == 5


def test_a_batch_that_fails_to_write_is_made_again_one_create_at_a_time(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificates, context = service
    certificates.create(spec("taken"), SYSTEM_ACTOR)
    load = BatchReferences.load

    def stale_load(*args: Any) -> BatchReferences:
        # As if another replica committed "taken" after this batch read the names: its INSERT then fails.
        references = load(*args)
        references.found.discard(("name", "taken"))
        return references

    monkeypatch.setattr(BatchReferences, "load", staticmethod(stale_load))
    first, taken, last = certificates.create_many(
        [(spec("first"), SYSTEM_ACTOR), (spec("taken"), SYSTEM_ACTOR), (spec("last"), SYSTEM_ACTOR)]
    )
    assert isinstance(taken, AlreadyExists)
    for view in (first, last):
        assert isinstance(view, CertificateView)
        assert len(rows_of(context, view.certificate.id)[0]) == 1
    with context.db.begin() as session:
        names = sorted(session.scalars(select(ManagedCertificate.name)))
    assert names == ["first", "last", "taken"]


def test_concurrent_creates_each_get_their_own_answer(service: Any) -> None:
    certificates, context = service
    names = [f"host-{i}" for i in range(12)] + ["host-0-again"]

    async def create_all() -> list[CertificateView | BaseException]:
        creates = (certificates.create_together(spec(name.removesuffix("-again")), SYSTEM_ACTOR) for name in names)
        return await asyncio.gather(*creates, return_exceptions=True)

    results = dict(zip(names, asyncio.run(create_all()), strict=True))
    failures = [name for name, outcome in results.items() if isinstance(outcome, BaseException)]
    assert failures == ["host-0-again"]
    assert isinstance(results["host-0-again"], AlreadyExists)
    for outcome in results.values():
        if isinstance(outcome, CertificateView):
            jobs, actions = rows_of(context, outcome.certificate.id)
            assert len(jobs) == 1
            assert actions == ["certificate_created", "renewal_job_created"]


def test_errors_are_the_single_create_errors(service: Any) -> None:
    certificates, _ = service
    certificates.create(spec("dup"), SYSTEM_ACTOR)
    with pytest.raises(AlreadyExists):
        certificates.create(spec("dup"), SYSTEM_ACTOR)
    with pytest.raises(ValidationFailed, match="certificate_profile_id 'nope'"):
        certificates.create(spec("p", certificate_profile_id="nope"), SYSTEM_ACTOR)
    with pytest.raises(ValidationFailed, match="owner_id"):  # the earlier rule wins over the missing policy
        certificates.create(spec("p", owner_id="x", renewal_policy_id="nope"), SYSTEM_ACTOR)
    certificates.create(spec("fixed", id="mc-fixed"), SYSTEM_ACTOR)
    with pytest.raises(Conflict, match="mc-fixed already exists"):
        certificates.create(spec("fixed-2", id="mc-fixed"), SYSTEM_ACTOR)
