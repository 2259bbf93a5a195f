"""POST /api/v1/certificates/{id}/revoke: the 200 shape, what one transaction writes, the Revocation job,
and every refusal (pki.md §A2.2)."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from sqlalchemy import select, update

from certctl.audit.models import AuditEvent
from certctl.certificates.models import CertificateVersion
from certctl.issuers.models import Issuer
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.notifications.models import NotificationEvent
from certctl.revocation.models import CertificateRevocation
from tests.conftest import client_for
from tests.revocation.conftest import Revocations


def _ledger(rev: Revocations) -> list[CertificateRevocation]:
    with rev.context.db.read() as session:
        return list(session.scalars(select(CertificateRevocation)))


def test_revoke_answers_revoked_and_records_the_latest_serial_in_the_ledger(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    pem = rev.client.get(f"/api/v1/certificates/{cert_id}/export/pem").json()["cert_pem"]
    leaf = x509.load_pem_x509_certificate(pem.encode())

    response = rev.client.post(f"/api/v1/certificates/{cert_id}/revoke", json={"reason": "keyCompromise"})

    assert (response.status_code, response.json()) == (200, {"status": "revoked"})
    cert = rev.client.get(f"/api/v1/certificates/{cert_id}").json()
    assert (cert["status"], cert["revocation_reason"]) == ("Revoked", "keyCompromise")
    assert cert["revoked_at"] is not None
    [row] = _ledger(rev)
    assert row.id.startswith("rev-")
    assert (row.certificate_id, row.issuer_id, row.serial_number) == (
        cert_id,
        "iss-local",
        format(leaf.serial_number, "x"),
    )
    assert (row.reason, row.revoked_by, row.revoked_at) == ("keyCompromise", "admin", rev.clock.now())
    assert row.not_after == leaf.not_valid_after_utc
    assert (row.short_lived, row.issuer_notified) == (False, False)
    with rev.context.db.read() as session:
        assert session.get(Issuer, "iss-local").revocation_revision == 1  # type: ignore[union-attr]
        audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "certificate_revoked")).one()
        notices = session.scalars(select(NotificationEvent).where(NotificationEvent.certificate_id == cert_id)).all()
    assert (audit.actor, audit.resource_id, audit.details["reason"]) == ("admin", cert_id, "keyCompromise")
    assert audit.details["serial"] == row.serial_number
    revocation_notices = [n for n in notices if n.type == "Revocation"]
    assert [(n.channel, n.recipient) for n in revocation_notices] == [("Email", "alice@example.com")]
    assert "keyCompromise" in revocation_notices[0].message
    assert rev.heard == ["iss-local"]


def test_the_revocation_job_tells_the_issuer_and_marks_the_row_notified(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")
    revocation_jobs = [j for j in rev.jobs(cert_id) if j["type"] == "Revocation"]
    assert [j["status"] for j in revocation_jobs] == ["Pending"]

    summary = rev.processor.run(rev.clock.now())

    assert (summary.claimed, summary.completed) == (1, 1)
    job = rev.client.get(f"/api/v1/jobs/{revocation_jobs[0]['id']}").json()
    assert (job["status"], job["attempts"]) == ("Completed", 1)
    [row] = _ledger(rev)
    assert row.issuer_notified is True
    assert row.reason == "unspecified"


def test_a_failing_issuer_is_retried_with_backoff_until_it_hears(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke", json={"reason": "superseded"})
    with rev.context.db.begin() as session:
        session.execute(update(Issuer).values(enabled=False))

    rev.processor.run(rev.clock.now())

    [job] = [j for j in rev.jobs(cert_id) if j["type"] == "Revocation"]
    assert job["status"] == "Failed"
    assert "disabled" in job["last_error"]
    assert job["next_retry_at"] is not None
    assert _ledger(rev)[0].issuer_notified is False
    with rev.context.db.begin() as session:
        session.execute(update(Issuer).values(enabled=True))
    rev.clock.advance(timedelta(hours=1))
    rev.queue.retry_due(rev.clock.now())
    rev.processor.run(rev.clock.now())
    assert rev.client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "Completed"
    assert _ledger(rev)[0].issuer_notified is True


def test_revoking_cancels_the_certificates_open_jobs(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    renewal = rev.client.post(f"/api/v1/certificates/{cert_id}/renew").json()["job_id"]

    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")

    job = rev.client.get(f"/api/v1/jobs/{renewal}").json()
    assert (job["status"], job["last_error"]) == ("Cancelled", "certificate revoked")
    rev.processor.run(rev.clock.now())  # the cancelled renewal is never issued
    assert rev.client.get(f"/api/v1/certificates/{cert_id}/versions").json()["total"] == 1


def test_a_padded_upper_case_stored_serial_is_recorded_in_canonical_form(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    with rev.context.db.begin() as session:
        version = session.scalars(select(CertificateVersion)).one()
        canonical = version.serial_number
        version.serial_number = "000" + canonical.upper()

    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")

    assert _ledger(rev)[0].serial_number == canonical


def test_the_latest_version_is_the_one_revoked(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    rev.client.post(f"/api/v1/certificates/{cert_id}/renew")
    rev.clock.advance(timedelta(minutes=1))
    rev.processor.run(rev.clock.now())
    versions = rev.client.get(f"/api/v1/certificates/{cert_id}/versions").json()["data"]
    assert len(versions) == 2

    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")

    assert _ledger(rev)[0].serial_number == versions[0]["serial_number"]  # newest first


def test_refusals(rev: Revocations) -> None:
    revoked = rev.issue("revoked")
    assert rev.client.post(f"/api/v1/certificates/{revoked}/revoke").status_code == 200
    again = rev.client.post(f"/api/v1/certificates/{revoked}/revoke")
    assert (again.status_code, again.json()["message"]) == (400, f"certificate {revoked} is already revoked")

    archived = rev.issue("archived")
    rev.client.delete(f"/api/v1/certificates/{archived}")
    gone = rev.client.post(f"/api/v1/certificates/{archived}/revoke")
    assert gone.status_code == 400
    assert "archived" in gone.json()["message"]

    pending = rev.create("pending")  # its issuance job never ran: no serial yet
    never = rev.client.post(f"/api/v1/certificates/{pending}/revoke")
    assert (never.status_code, never.json()["message"]) == (
        400,
        f"certificate {pending} has no issued version to revoke",
    )
    assert rev.jobs(pending)[0]["status"] == "Pending"  # rolled back: nothing cancelled

    missing = rev.client.post("/api/v1/certificates/mc-nope/revoke")
    assert (missing.status_code, missing.json()["message"]) == (404, "certificate mc-nope not found")

    active = rev.issue("active")
    for reason in ("bogus", "removeFromCRL", "aACompromise"):
        bad = rev.client.post(f"/api/v1/certificates/{active}/revoke", json={"reason": reason})
        assert bad.status_code == 400
        assert bad.json()["message"].startswith(f"invalid revocation reason '{reason}'")
    assert rev.client.get(f"/api/v1/certificates/{active}").json()["status"] == "Active"
    assert len(_ledger(rev)) == 1
    assert rev.heard == ["iss-local"]


def test_the_reason_is_read_only_from_a_json_body(rev: Revocations) -> None:
    cases = [
        ({}, "unspecified"),  # no body at all
        ({"content": '{"reason": "keyCompromise"}', "headers": {"Content-Type": "text/plain"}}, "unspecified"),
        ({"content": "", "headers": {"Content-Type": "application/json"}}, "unspecified"),
        ({"json": {"reason": ""}}, "unspecified"),
        ({"json": {"reason": "cessationOfOperation"}}, "cessationOfOperation"),
        ({"json": {"reason": "KEYCOMPROMISE"}}, "keyCompromise"),
        (
            {
                "content": '{"reason": "privilegeWithdrawn"}',
                "headers": {"Content-Type": "application/json; charset=utf-8"},
            },
            "privilegeWithdrawn",
        ),
    ]
    for n, (request, expected) in enumerate(cases):
        cert_id = rev.issue(f"c{n}")
        response = rev.client.post(f"/api/v1/certificates/{cert_id}/revoke", **request)
        assert response.status_code == 200, (request, response.text)
        assert rev.client.get(f"/api/v1/certificates/{cert_id}").json()["revocation_reason"] == expected, request

    cert_id = rev.issue("malformed")
    for content in ("{not json", '["keyCompromise"]', '{"reason": 4}', '{"reason": "superseded", "why": 1}'):
        bad = rev.client.post(
            f"/api/v1/certificates/{cert_id}/revoke", content=content, headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400, content
        assert bad.json()["message"].startswith('body must be {"reason": "<name>"}')


def test_operators_may_revoke_viewers_may_not(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    with client_for(rev.context, "viewer") as viewer:
        assert viewer.post(f"/api/v1/certificates/{cert_id}/revoke").status_code == 403
    with client_for(rev.context, "operator") as operator:
        assert operator.post(f"/api/v1/certificates/{cert_id}/revoke").status_code == 200
    assert _ledger(rev)[0].revoked_by == "operator"


def test_a_failing_listener_never_fails_the_revocation(rev: Revocations) -> None:
    def broken(issuer_id: str) -> None:
        raise RuntimeError("CRL signer down")

    rev.context.revocations.listeners.insert(0, broken)
    cert_id = rev.issue("web")

    assert rev.client.post(f"/api/v1/certificates/{cert_id}/revoke").status_code == 200
    assert rev.heard == ["iss-local"]  # later listeners still run


def test_only_revocation_jobs_are_left_open(rev: Revocations) -> None:
    cert_id = rev.issue("web")
    rev.client.post(f"/api/v1/certificates/{cert_id}/revoke")
    with rev.context.db.read() as session:
        open_jobs = session.scalars(
            select(Job).where(Job.certificate_id == cert_id, Job.status == JobStatus.PENDING)
        ).all()
    assert [job.type for job in open_jobs] == [JobType.REVOCATION]
    assert open_jobs[0].version_id is not None
