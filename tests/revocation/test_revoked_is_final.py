"""Revoked is final: never renewed (scan, endpoint, bulk), never deployed again, status not editable."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from certctl.agents.deployments import queue_deployments
from certctl.certificates.models import ManagedCertificate
from certctl.certificates.renewal import RenewalChecker
from certctl.config import KeygenMode
from tests.factories import add_agent, add_target
from tests.revocation.conftest import Revocations


def test_the_renewal_scan_never_renews_a_revoked_certificate(rev: Revocations) -> None:
    revoked, active = rev.issue("revoked"), rev.issue("active")
    rev.client.post(f"/api/v1/certificates/{revoked}/revoke")
    expires_at = rev.client.get(f"/api/v1/certificates/{active}").json()["expires_at"]
    assert expires_at is not None
    checker = RenewalChecker(rev.context.db, rev.clock, KeygenMode.SERVER, lambda issuer_id: True)

    rev.clock.advance(timedelta(days=89))  # inside every renewal window, not yet expired
    summary = checker.run()

    assert summary.jobs_created == 1  # the active one only
    assert sorted(j["type"] for j in rev.jobs(revoked)) == ["Issuance", "Revocation"]
    assert rev.client.get(f"/api/v1/certificates/{revoked}").json()["status"] == "Revoked"


def test_renew_and_bulk_renew_refuse_a_revoked_certificate(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")

    renew = rev.client.post(f"/api/v1/certificates/{cert_id}/renew", params={"force": "true"})
    assert renew.status_code == 400
    assert "Revoked and cannot be renewed" in renew.json()["message"]
    bulk = rev.client.post("/api/v1/certificates/bulk-renew", json={"certificate_ids": [cert_id]}).json()
    assert (bulk["total_enqueued"], bulk["total_skipped"]) == (0, 1)


def test_a_revoked_certificate_is_never_deployed_again(rev: Revocations) -> None:
    add_agent(rev.context, "ag-1")
    add_target(rev.context, "tgt-1", "ag-1")
    cert_id = rev.issue("web", target_ids=["tgt-1"])
    assert rev.client.post(f"/api/v1/certificates/{cert_id}/deploy").status_code == 202
    deployments = [j for j in rev.jobs(cert_id) if j["type"] == "Deployment"]
    assert [j["status"] for j in deployments] == ["Pending"]

    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")

    assert rev.client.get(f"/api/v1/jobs/{deployments[0]['id']}").json()["status"] == "Cancelled"
    deploy = rev.client.post(f"/api/v1/certificates/{cert_id}/deploy")
    assert deploy.status_code == 409
    assert deploy.json()["message"] == f"certificate {cert_id} is Revoked; it can no longer be deployed"
    with rev.context.db.begin() as session:  # after an issuance (server keygen, agent CSR): nothing queued
        cert = session.scalars(select(ManagedCertificate)).one()
        assert queue_deployments(session, cert, rev.clock.now()) == []
    work = [j for j in rev.jobs(cert_id) if j["type"] == "Deployment" and j["status"] == "Pending"]
    assert work == []


def test_an_update_cannot_bring_a_revoked_certificate_back(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")

    for method in ("PUT", "PATCH"):
        response = rev.client.request(method, f"/api/v1/certificates/{cert_id}", json={"status": "Active"})
        assert response.status_code == 400
        assert "status is managed by the certificate lifecycle" in response.json()["message"]
    assert rev.client.get(f"/api/v1/certificates/{cert_id}").json()["status"] == "Revoked"
