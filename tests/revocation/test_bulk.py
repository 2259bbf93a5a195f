"""POST /api/v1/certificates/bulk-revoke: admin only, every criterion, the original's counts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from certctl.audit.models import AuditEvent
from certctl.issuers.models import Issuer
from certctl.notifications.models import NotificationEvent
from certctl.org.models import Team
from certctl.revocation.models import CertificateRevocation
from tests.conftest import client_for
from tests.factories import add_agent, add_profile, add_target
from tests.revocation.conftest import Revocations

URL = "/api/v1/certificates/bulk-revoke"


def _status(rev: Revocations, cert_id: str) -> str:
    status: str = rev.client.get(f"/api/v1/certificates/{cert_id}").json()["status"]
    return status


@pytest.fixture
def fleet(rev: Revocations) -> dict[str, str]:
    """Certificates that differ in exactly one criterion each from the plain `base` one."""
    now = rev.clock.now()
    with rev.context.db.begin() as session:
        session.add(Team(id="t-ops", name="ops", created_at=now, updated_at=now))
        session.add(Issuer(id="iss-two", name="Second CA", type="GenericCA", config={}, created_at=now, updated_at=now))
    add_profile(rev.context, "prof-edge")
    add_agent(rev.context, "ag-edge")
    add_target(rev.context, "tgt-edge", "ag-edge")
    rev.client.post(
        "/api/v1/owners", json={"id": "o-bob", "name": "Bob", "email": "bob@example.com", "team_id": "t-web"}
    )
    names: dict[str, dict[str, Any]] = {
        "base": {},
        "profile": {"certificate_profile_id": "prof-edge"},
        "owner": {"owner_id": "o-bob"},
        "team": {"team_id": "t-ops"},
        "issuer": {"issuer_id": "iss-two"},
        "agent": {"target_ids": ["tgt-edge"]},
    }
    ids = {name: rev.create(name, **fields) for name, fields in names.items()}
    rev.processor.run(rev.clock.now())
    assert {_status(rev, cert_id) for cert_id in ids.values()} == {"Active"}
    return ids


@pytest.mark.parametrize(
    ("criterion", "value", "picked"),
    [
        ("profile_id", "prof-edge", "profile"),
        ("owner_id", "o-bob", "owner"),
        ("team_id", "t-ops", "team"),
        ("issuer_id", "iss-two", "issuer"),
        ("agent_id", "ag-edge", "agent"),
    ],
)
def test_each_criterion_revokes_exactly_its_certificates(
    rev: Revocations, fleet: dict[str, str], criterion: str, value: str, picked: str
) -> None:
    result = rev.client.post(URL, json={"reason": "affiliationChanged", criterion: value})

    assert result.status_code == 200, result.text
    assert result.json() == {
        "total_matched": 1,
        "total_revoked": 1,
        "total_skipped": 0,
        "total_failed": 0,
        "errors": [],
    }
    revoked = {name for name, cert_id in fleet.items() if _status(rev, cert_id) == "Revoked"}
    assert revoked == {picked}
    assert rev.client.get(f"/api/v1/certificates/{fleet[picked]}").json()["revocation_reason"] == "affiliationChanged"


def test_counts_skip_what_cannot_be_revoked_and_fail_unknown_ids(rev: Revocations, fleet: dict[str, str]) -> None:
    rev.client.post(f"/api/v1/certificates/{fleet['team']}/revoke")
    rev.client.delete(f"/api/v1/certificates/{fleet['owner']}")
    pending = rev.create("pending")
    heard_before = len(rev.heard)
    wanted = [fleet["base"], fleet["issuer"], fleet["team"], fleet["owner"], pending, "mc-missing"]

    result = rev.client.post(URL, json={"reason": "cessationOfOperation", "certificate_ids": wanted}).json()

    assert {k: v for k, v in result.items() if k != "errors"} == {
        "total_matched": 5,
        "total_revoked": 2,
        "total_skipped": 3,
        "total_failed": 1,
    }
    assert result["errors"] == [{"certificate_id": "mc-missing", "error": "certificate mc-missing not found"}]
    assert _status(rev, fleet["base"]) == _status(rev, fleet["issuer"]) == "Revoked"
    assert _status(rev, pending) == "RenewalInProgress"
    assert sorted(rev.heard[heard_before:]) == ["iss-local", "iss-two"]  # once per issuer, at the end
    with rev.context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRevocation)) == 3
        assert session.get(Issuer, "iss-two").revocation_revision == 1  # type: ignore[union-attr]
        summary = session.scalars(select(AuditEvent).where(AuditEvent.action == "bulk_revocation_initiated")).one()
        per_cert = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "certificate_revoked")
        )
        notices = session.execute(
            select(NotificationEvent.certificate_id, NotificationEvent.channel, NotificationEvent.recipient).where(
                NotificationEvent.type == "Revocation"
            )
        ).all()
    assert summary.details == {"reason": "cessationOfOperation", "matched": 5, "revoked": 2, "skipped": 3, "failed": 1}
    assert sorted(notices) == sorted(
        [
            (fleet["team"], "Email", "alice@example.com"),  # its single revoke
            (fleet["base"], "Email", "alice@example.com"),
            (fleet["issuer"], "Email", "alice@example.com"),
        ]
    )
    assert per_cert == 3
    rev.processor.run(rev.clock.now())
    with rev.context.db.read() as session:
        assert all(session.scalars(select(CertificateRevocation.issuer_notified)))


def test_bulk_walks_past_one_chunk(rev: Revocations, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("certctl.revocation.service.BULK_CHUNK", 2)
    ids = [rev.create(f"c{n}") for n in range(5)]
    rev.processor.run(rev.clock.now())

    result = rev.client.post(URL, json={"reason": "superseded", "owner_id": "o-alice"}).json()

    assert (result["total_matched"], result["total_revoked"]) == (5, 5)
    assert {_status(rev, cert_id) for cert_id in ids} == {"Revoked"}
    assert rev.heard == ["iss-local"]


def test_bulk_is_admin_only_and_needs_a_reason_and_a_criterion(rev: Revocations, fleet: dict[str, str]) -> None:
    with client_for(rev.context, "operator") as operator:
        refused = operator.post(URL, json={"reason": "superseded", "owner_id": "o-alice"})
    assert refused.status_code == 403
    for body, message in (
        ({"owner_id": "o-alice"}, "reason"),
        ({"reason": "", "owner_id": "o-alice"}, "reason"),
        ({"reason": "superseded"}, "give at least one criterion"),
        ({"reason": "bogus", "owner_id": "o-alice"}, "invalid revocation reason 'bogus'"),
        ({"reason": "superseded", "owner_id": "o-alice", "status": "Active"}, "status"),
    ):
        response = rev.client.post(URL, json=body)
        assert response.status_code == 400, body
        assert message in response.json()["message"], (body, response.json())
    assert {_status(rev, cert_id) for cert_id in fleet.values()} == {"Active"}
