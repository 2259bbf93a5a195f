"""The agent protocol end to end through the API: agent-made keys, CSR signing, deployment jobs,
status reports with the retry rules, verification reports (core.md §6, agent-targets-discovery.md §A1)."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import select

from certctl.audit.models import AuditEvent
from certctl.jobs.service import JobQueue
from certctl.notifications.models import NotificationEvent
from tests.agents.conftest import Plane


def _issue_through_agent(plane: Plane, name: str = "web") -> tuple[object, str, dict[str, object]]:
    agent = plane.register(f"agent-{name}")
    target_id = plane.target(agent)
    cert = plane.certificate(name, [target_id])
    return agent, target_id, cert


def test_a_certificate_is_issued_from_the_agents_csr_and_then_deployed(plane: Plane) -> None:
    agent = plane.register("edge-1")
    target_id = plane.target(agent)
    cert = plane.certificate("web", [target_id], sans=["web.example.com", "10.0.0.7"])
    assert cert["status"] == "RenewalInProgress"
    [issuance] = plane.jobs(cert["id"])
    assert (issuance["status"], issuance["agent_id"]) == ("AwaitingCSR", agent.id)

    [item] = agent.poll()
    assert item == {
        "id": issuance["id"],
        "type": "Issuance",
        "status": "AwaitingCSR",
        "certificate_id": cert["id"],
        "common_name": "web.example.com",
        "sans": ["web.example.com", "10.0.0.7"],
        "key_algorithm": "ECDSA-P256",
    }
    assert agent.poll() == [item]  # AwaitingCSR comes back until the CSR arrives

    signed = agent.submit_csr(item)
    assert signed.status_code == 202, signed.text
    assert signed.json()["status"] == "csr_signed"
    issued = plane.operator.get(f"/api/v1/certificates/{cert['id']}").json()
    assert issued["status"] == "Active"

    [deployment] = agent.poll()  # the new version is queued for the mapped target and claimed by this poll
    assert deployment["type"] == "Deployment"
    assert deployment["status"] == "Running"
    assert deployment["target_id"] == target_id
    assert deployment["target_type"] == "NGINX"
    assert deployment["target_config"]["cert_path"] == "/etc/nginx/ssl/web.crt"
    assert deployment["version_id"] == signed.json()["version_id"]
    assert deployment["private_key_available"] is False
    assert agent.poll() == []  # claimed once only

    pickup = agent.client.get(f"/api/v1/agents/{agent.id}/certificates/{cert['id']}").json()
    assert "private_key_pem" not in pickup or pickup["private_key_pem"] is None
    leaf = x509.load_pem_x509_certificate(pickup["certificate_pem"].encode())
    assert leaf.public_key() == agent.keys[cert["id"]].public_key()  # the agent's key, never ours
    assert leaf.fingerprint(hashes.SHA256()).hex() == pickup["fingerprint_sha256"]

    assert agent.report(deployment["id"], "Running").status_code == 200
    result = {"stage": "done", "reloaded": True, "duration_ms": 812}
    done = agent.report(deployment["id"], "Completed", result=result)
    assert done.status_code == 200, done.text
    job = plane.operator.get(f"/api/v1/jobs/{deployment['id']}").json()
    assert (job["status"], job["attempts"], job["verification_status"]) == ("Completed", 1, "skipped")
    assert job["deployment_result"] == result
    target = plane.operator.get(f"/api/v1/targets/{target_id}").json()
    assert (target["deploy_success_count"], target["last_deploy_status"]) == (1, "success")
    assert plane.operator.get(f"/api/v1/certificates/{cert['id']}").json()["last_deployment_at"] is not None
    assert agent.report(deployment["id"], "Completed").status_code == 409  # the attempt is over


def test_the_profile_decides_the_agents_key_algorithm(plane: Plane) -> None:
    created = plane.operator.post(
        "/api/v1/profiles", json={"name": "p384", "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 384}]}
    )
    assert created.status_code == 201, created.text
    agent = plane.register("edge-1")
    plane.certificate("web", [plane.target(agent)], certificate_profile_id=created.json()["id"])
    [item] = agent.poll()
    assert item["key_algorithm"] == "ECDSA-P384"
    assert agent.submit_csr(item).status_code == 202


def test_a_csr_the_profile_rejects_fails_the_job_for_good(plane: Plane) -> None:
    created = plane.operator.post(
        "/api/v1/profiles", json={"name": "p384", "allowed_key_algorithms": [{"algorithm": "ECDSA", "min_size": 384}]}
    )
    agent = plane.register("edge-1")
    cert = plane.certificate("web", [plane.target(agent)], certificate_profile_id=created.json()["id"])
    [item] = agent.poll()
    rejected = agent.submit_csr(item | {"key_algorithm": "ECDSA-P256"})  # a key the profile does not allow
    assert rejected.status_code == 400
    assert "CSR rejected" in rejected.json()["message"]
    [job] = plane.jobs(cert["id"])
    assert (job["status"], job["next_retry_at"]) == ("Failed", None)
    assert plane.operator.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Failed"
    assert agent.poll() == []


def test_garbage_csrs_and_foreign_certificates_are_refused_without_touching_the_job(plane: Plane) -> None:
    agent = plane.register("edge-1")
    other = plane.register("edge-2")
    cert = plane.certificate("web", [plane.target(agent)])
    bad = agent.client.post(f"/api/v1/agents/{agent.id}/csr", json={"csr_pem": "hello", "certificate_id": cert["id"]})
    assert bad.status_code == 400
    [item] = agent.poll()
    foreign = other.submit_csr(item)
    assert foreign.status_code == 403
    assert [job["status"] for job in plane.jobs(cert["id"])] == ["AwaitingCSR"]
    assert other.client.get(f"/api/v1/agents/{other.id}/certificates/{cert['id']}").status_code == 403


def test_failed_deployments_retry_with_backoff_then_fail_for_good_and_notify(plane: Plane) -> None:
    agent = plane.register("edge-1")
    cert = plane.certificate("web", [plane.target(agent)])
    [item] = agent.poll()
    agent.submit_csr(item)
    queue = JobQueue(plane.context.db, plane.clock)
    for attempt in (1, 2, 3):
        [deployment] = agent.poll()
        failed = agent.report(deployment["id"], "Failed", error=f"reload failed ({attempt})")
        assert failed.status_code == 200, failed.text
        job = plane.operator.get(f"/api/v1/jobs/{deployment['id']}").json()
        assert (job["status"], job["attempts"], job["last_error"]) == ("Failed", attempt, f"reload failed ({attempt})")
        if attempt < 3:
            assert job["next_retry_at"] is not None
            assert agent.poll() == []  # not before the backoff has passed
            plane.clock.advance(datetime.fromisoformat(job["next_retry_at"]) - plane.clock.now())
            assert queue.retry_due(plane.clock.now()).changed == 1
        else:
            assert job["next_retry_at"] is None
    with plane.context.db.begin() as session:
        kinds = session.scalars(
            select(NotificationEvent.type).where(NotificationEvent.certificate_id == cert["id"])
        ).all()
        assert "DeploymentFailure" in kinds


def test_three_failed_jobs_in_a_row_degrade_the_agent_until_one_succeeds(plane: Plane) -> None:
    agent = plane.register("edge-1")
    targets = [plane.target(agent, f"t{n}") for n in range(4)]
    plane.certificate("web", targets)
    [item] = agent.poll()
    agent.submit_csr(item)
    deployments = agent.poll()
    assert len(deployments) == 4

    def status() -> str:
        return str(plane.operator.get(f"/api/v1/agents/{agent.id}").json()["status"])

    def report(job: dict[str, object], outcome: str) -> None:
        plane.clock.advance(timedelta(seconds=1))
        assert agent.report(str(job["id"]), outcome, error="reload failed").status_code == 200

    for job in deployments[:2]:
        report(job, "Failed")
    assert status() == "Online"
    report(deployments[2], "Failed")
    assert status() == "Degraded"
    report(deployments[3], "Completed")
    assert status() == "Online"


def test_verification_reports_are_stored_failures_included(plane: Plane) -> None:
    agent = plane.register("edge-1")
    other = plane.register("edge-2")
    target_id = plane.target(agent)
    cert = plane.certificate("web", [target_id])
    [item] = agent.poll()
    agent.submit_csr(item)
    [deployment] = agent.poll()
    probe_failed = {
        "target_id": target_id,
        "expected_fingerprint": "AB" * 32,
        "actual_fingerprint": "",
        "verified": False,
        "error": "connection refused",
    }
    assert other.client.post(f"/api/v1/jobs/{deployment['id']}/verify", json=probe_failed).status_code == 404
    stored = agent.client.post(f"/api/v1/jobs/{deployment['id']}/verify", json=probe_failed)
    assert stored.status_code == 200, stored.text
    view = plane.operator.get(f"/api/v1/jobs/{deployment['id']}/verification").json()
    assert (view["verification_status"], view["verification_error"]) == ("failed", "connection refused")
    matched = probe_failed | {"actual_fingerprint": "ab" * 32, "verified": True, "error": ""}
    agent.client.post(f"/api/v1/jobs/{deployment['id']}/verify", json=matched)
    view = plane.operator.get(f"/api/v1/jobs/{deployment['id']}/verification").json()
    assert (view["verification_status"], view["verification_fingerprint"]) == ("success", "ab" * 32)
    agent.report(deployment["id"], "Completed")
    assert plane.operator.get(f"/api/v1/jobs/{deployment['id']}").json()["verification_status"] == "success"
    del cert


def test_on_demand_deploy_queues_a_job_per_mapped_target(plane: Plane) -> None:
    agent = plane.register("edge-1")
    first, second = plane.target(agent, "one"), plane.target(agent, "two")
    cert = plane.certificate("web", [first, second])
    early = plane.operator.post(f"/api/v1/certificates/{cert['id']}/deploy")
    assert early.status_code == 400  # nothing issued yet
    [item] = agent.poll()
    agent.submit_csr(item)
    queued = plane.operator.post(f"/api/v1/certificates/{cert['id']}/deploy", json={"target_ids": [second]})
    assert queued.status_code == 202, queued.text
    assert queued.json()["count"] == 1
    claimed = agent.poll()
    # The issuance queued one job per target; the manual one superseded the pending job for `second`.
    assert sorted(job["target_id"] for job in claimed) == sorted([first, second])
    assert queued.json()["job_ids"][0] in {job["id"] for job in claimed}
    unknown = plane.operator.post(f"/api/v1/certificates/{cert['id']}/deploy", json={"target_ids": ["nope"]})
    assert unknown.status_code == 400


def test_a_target_mapped_to_an_issued_certificate_gets_the_current_version(plane: Plane) -> None:
    agent = plane.register("edge-1")
    first = plane.target(agent, "one")
    cert = plane.certificate("web", [first])
    [item] = agent.poll()
    version_id = agent.submit_csr(item).json()["version_id"]
    [first_deploy] = agent.poll()
    assert first_deploy["target_id"] == first

    second, third = plane.target(agent, "two"), plane.target(agent, "three")
    added = plane.operator.post(f"/api/v1/certificates/{cert['id']}/targets", json={"target_id": second})
    assert added.status_code == 201, added.text
    replaced = plane.operator.put(
        f"/api/v1/certificates/{cert['id']}/targets", json={"target_ids": [first, second, third]}
    )
    assert replaced.status_code == 200, replaced.text
    claimed = agent.poll()
    # Only the newly mapped targets get a job, each pinned to the version the certificate serves.
    assert sorted(job["target_id"] for job in claimed) == sorted([second, third])
    assert {job["version_id"] for job in claimed} == {version_id}


def test_mapping_a_target_to_a_certificate_not_yet_issued_queues_nothing(plane: Plane) -> None:
    agent = plane.register("edge-1")
    cert = plane.certificate("web", [plane.target(agent, "one")])
    second = plane.target(agent, "two")
    added = plane.operator.post(f"/api/v1/certificates/{cert['id']}/targets", json={"target_id": second})
    assert added.status_code == 201, added.text
    assert [job["type"] for job in plane.jobs(cert["id"])] == ["Issuance"]  # deployed after issuance instead


def test_testing_a_target_asks_its_agent(plane: Plane) -> None:
    agent = plane.register("edge-1")
    target_id = plane.target(agent)
    queued = plane.operator.post(f"/api/v1/targets/{target_id}/test")
    assert queued.status_code == 202, queued.text
    assert queued.json()["job_status"] == "Pending"
    [item] = agent.poll()
    assert (item["type"], item["target_id"], item["target_type"]) == ("Validation", target_id, "NGINX")
    checks = [
        {"name": "cert_path writable", "ok": True, "message": "/etc/nginx/ssl"},
        {"name": "validate_command", "ok": False, "message": "nginx -t exited 1"},
    ]
    agent.report(item["id"], "Failed", error="validate_command failed", result={"checks": checks})
    target = plane.operator.get(f"/api/v1/targets/{target_id}").json()
    assert target["test_status"] == "failed"
    assert target["last_tested_at"] is not None
    job = plane.operator.get(f"/api/v1/jobs/{item['id']}").json()
    assert (job["status"], job["next_retry_at"]) == ("Failed", None)  # a test is never retried behind your back


def test_audit_names_the_agent(plane: Plane) -> None:
    agent = plane.register("edge-1")
    cert = plane.certificate("web", [plane.target(agent)])
    [item] = agent.poll()
    agent.submit_csr(item)
    with plane.context.db.begin() as session:
        actors = session.execute(
            select(AuditEvent.actor, AuditEvent.actor_type).where(AuditEvent.action == "csr_submitted")
        ).all()
    assert [(a, str(t)) for a, t in actors] == [(agent.id, "Agent")]
    del cert


def test_the_deployments_view_shows_each_targets_last_deployment(plane: Plane) -> None:
    agent = plane.register("edge-1")
    first, second = plane.target(agent, "one"), plane.target(agent, "two")
    cert = plane.certificate("web", [first, second])
    before = plane.operator.get(f"/api/v1/certificates/{cert['id']}/deployments").json()
    assert before["total"] == 2
    assert [row["last_deployment"] for row in before["data"]] == [None, None]
    [item] = agent.poll()
    agent.submit_csr(item)
    by_target = {job["target_id"]: job for job in agent.poll()}
    agent.report(by_target[first]["id"], "Completed")
    agent.report(by_target[second]["id"], "Failed", error="nginx -t failed")
    after = plane.operator.get(f"/api/v1/certificates/{cert['id']}/deployments").json()
    states = {row["id"]: row["last_deployment"] for row in after["data"]}
    assert (states[first]["status"], states[first]["verification_status"]) == ("Completed", "skipped")
    assert (states[second]["status"], states[second]["last_error"]) == ("Failed", "nginx -t failed")
    assert after["data"][0]["type"] == "NGINX"  # still the target itself, as in the original


def test_an_agent_that_cannot_make_a_csr_fails_the_attempt_and_the_job_comes_back(plane: Plane) -> None:
    agent = plane.register("edge-1")
    cert = plane.certificate("web", [plane.target(agent)])
    [item] = agent.poll()
    failed = agent.report(item["id"], "Failed", error="key directory /var/lib/certctl/keys is not writable")
    assert failed.status_code == 200, failed.text
    [job] = plane.jobs(cert["id"])
    assert (job["status"], job["attempts"]) == ("Failed", 1)
    assert job["last_error"] == "key directory /var/lib/certctl/keys is not writable"
    assert agent.poll() == []
    plane.clock.advance(datetime.fromisoformat(job["next_retry_at"]) - plane.clock.now())
    JobQueue(plane.context.db, plane.clock).retry_due(plane.clock.now())
    [again] = agent.poll()  # waiting for this agent's CSR again, never claimed by the server
    assert (again["id"], again["status"]) == (item["id"], "AwaitingCSR")
    assert agent.submit_csr(again).status_code == 202
    [done] = plane.jobs(cert["id"], "Renewal") or plane.jobs(cert["id"], "Issuance")
    assert (done["status"], done["attempts"]) == ("Completed", 2)


def test_peeking_lists_due_work_without_claiming_it(plane: Plane) -> None:
    agent = plane.register("edge-1")
    target_id = plane.target(agent)
    plane.operator.post(f"/api/v1/targets/{target_id}/test")
    peeked = agent.client.get(f"/api/v1/agents/{agent.id}/work", params={"peek": "true"}).json()["jobs"]
    assert [(job["type"], job["status"]) for job in peeked] == [("Validation", "Pending")]
    [claimed] = agent.poll()
    assert (claimed["id"], claimed["status"]) == (peeked[0]["id"], "Running")


def test_reported_deployments_feed_the_servers_deploy_counters(plane: Plane) -> None:
    agent = plane.register("edge-1")
    first, second = plane.target(agent, "one"), plane.target(agent, "two")
    plane.certificate("web", [first, second])
    [item] = agent.poll()
    agent.submit_csr(item)
    by_target = {job["target_id"]: job for job in agent.poll()}
    agent.report(by_target[first]["id"], "Completed", result={"stage": "done", "idempotent": False})
    rolled_back = {"stage": "reload", "rolled_back": True, "rollback_outcome": "restored"}
    agent.report(by_target[second]["id"], "Failed", error="reload failed", result=rolled_back)
    metrics = plane.operator.get("/metrics").text
    for line in (
        'certctl_deploy_attempts_total{result="success",target_type="NGINX"} 1.0',
        'certctl_deploy_attempts_total{result="failure",target_type="NGINX"} 1.0',
        'certctl_deploy_reload_failures_total{target_type="NGINX"} 1.0',
        'certctl_deploy_rollback_total{outcome="restored",target_type="NGINX"} 1.0',
    ):
        assert line in metrics, line
