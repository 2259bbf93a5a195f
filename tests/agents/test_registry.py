"""Registration, credentials and where they reach, heartbeats, retirement and the health sweep
(core.md §2.5, §6.1, §6.6)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from certctl.agents.models import Agent
from certctl.audit.models import AuditEvent
from certctl.security.apikeys import hash_key
from tests.agents.conftest import BOOTSTRAP_TOKEN, Plane
from tests.conftest import client_for


def _client(plane: Plane, token: str) -> TestClient:
    client = TestClient(plane.operator.app, headers={"Authorization": f"Bearer {token}"}, base_url="https://testserver")
    plane.clients.append(client)
    return client.__enter__()


def test_registration_returns_the_credential_once_and_stores_only_its_hash(plane: Plane) -> None:
    created = plane.operator.post(
        "/api/v1/agents", json={"name": "edge-1", "hostname": "edge-1.example.test", "os": "linux"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["api_key"]
    assert len(key) == 43
    assert "=" not in key
    assert (body["status"], body["os"]) == ("Online", "linux")
    with plane.context.db.begin() as session:
        assert session.scalars(select(Agent.api_key_hash).where(Agent.id == body["id"])).one() == hash_key(key)
    shown = plane.operator.get(f"/api/v1/agents/{body['id']}").json()
    listed = plane.operator.get("/api/v1/agents").json()
    assert "api_key" not in shown
    assert "api_key_hash" not in shown
    assert key not in str(listed)
    assert hash_key(key) not in str(listed)
    duplicate = plane.operator.post("/api/v1/agents", json={"name": "edge-1", "hostname": "x"})
    assert duplicate.status_code == 409


def test_the_bootstrap_token_registers_and_does_nothing_else(plane: Plane) -> None:
    bootstrap = _client(plane, BOOTSTRAP_TOKEN)
    registered = bootstrap.post("/api/v1/agents", json={"name": "self-1", "hostname": "self-1.example.test"})
    assert registered.status_code == 201, registered.text
    assert bootstrap.get("/api/v1/agents").status_code == 403
    assert bootstrap.get("/api/v1/certificates").status_code == 403
    wrong = _client(plane, "not-the-bootstrap-token")
    assert wrong.post("/api/v1/agents", json={"name": "self-2", "hostname": "h"}).status_code == 401


def test_an_agent_credential_reaches_only_its_own_agent_routes(plane: Plane) -> None:
    one, two = plane.register("edge-1"), plane.register("edge-2")
    assert one.client.post(f"/api/v1/agents/{one.id}/heartbeat", json={}).status_code == 200
    assert one.client.post(f"/api/v1/agents/{two.id}/heartbeat", json={}).status_code == 403
    assert one.client.get(f"/api/v1/agents/{two.id}/work").status_code == 403
    assert one.client.get("/api/v1/certificates").status_code == 403
    assert one.client.get(f"/api/v1/agents/{one.id}").status_code == 403  # operator route
    refused = plane.operator.get(f"/api/v1/agents/{one.id}/work")
    assert refused.status_code == 403
    assert refused.json()["message"] == "agent routes require the agent's own credential"


def test_heartbeat_records_host_details_and_brings_the_agent_back_online(plane: Plane) -> None:
    agent = plane.register("edge-1")
    plane.clock.advance(timedelta(minutes=3))
    assert plane.context.agents.mark_silent_offline(timedelta(minutes=2)) == 1
    assert plane.operator.get(f"/api/v1/agents/{agent.id}").json()["status"] == "Offline"
    details = {"version": "0.1.0", "os": "linux", "architecture": "amd64", "ip_address": "10.0.0.5", "extra": 1}
    beat = agent.client.post(f"/api/v1/agents/{agent.id}/heartbeat", json=details)
    assert beat.json() == {"status": "heartbeat_recorded"}
    shown = plane.operator.get(f"/api/v1/agents/{agent.id}").json()
    assert (shown["status"], shown["architecture"], shown["ip_address"]) == ("Online", "amd64", "10.0.0.5")
    assert (
        shown["last_heartbeat_at"] == plane.clock.now().isoformat().replace("+00:00", "Z") or shown["last_heartbeat_at"]
    )
    assert plane.context.agents.mark_silent_offline(timedelta(minutes=2)) == 0
    with plane.context.db.begin() as session:  # liveness is not an audited change
        audited = session.scalars(select(AuditEvent.resource_id).where(AuditEvent.resource_type == "api")).all()
    assert not [path for path in audited if path.endswith("/heartbeat")]
    assert any(path == "/api/v1/agents" for path in audited)  # the registration is


def test_rotating_the_key_retires_the_old_one(plane: Plane) -> None:
    agent = plane.register("edge-1")
    with client_for(plane.context, "admin") as admin:
        rotated = admin.post(f"/api/v1/agents/{agent.id}/rotate-key")
    assert rotated.status_code == 200, rotated.text
    assert agent.client.post(f"/api/v1/agents/{agent.id}/heartbeat", json={}).status_code == 401
    fresh = _client(plane, rotated.json()["api_key"])
    assert fresh.post(f"/api/v1/agents/{agent.id}/heartbeat", json={}).status_code == 200
    assert plane.operator.post(f"/api/v1/agents/{agent.id}/rotate-key").status_code == 403  # admin only


def test_retirement_is_blocked_by_dependencies_unless_forced_with_a_reason(plane: Plane) -> None:
    agent = plane.register("edge-1")
    target_id = plane.target(agent)
    plane.certificate("web", [target_id])
    blocked = plane.operator.delete(f"/api/v1/agents/{agent.id}")
    assert blocked.status_code == 409
    assert blocked.json()["error"] == "blocked_by_dependencies"
    assert blocked.json()["counts"] == {"active_targets": 1, "active_certificates": 1, "pending_jobs": 1}
    assert plane.operator.delete(f"/api/v1/agents/{agent.id}", params={"force": "true"}).status_code == 400

    retired = plane.operator.delete(f"/api/v1/agents/{agent.id}", params={"force": "true", "reason": "host gone"})
    assert retired.status_code == 200, retired.text
    assert (retired.json()["cascade"], retired.json()["already_retired"]) == (True, False)
    assert plane.operator.get(f"/api/v1/targets/{target_id}").json()["retired_reason"] == "host gone"
    jobs = plane.operator.get("/api/v1/jobs").json()["data"]
    assert [job["status"] for job in jobs] == ["Cancelled"]
    for call in (
        agent.client.post(f"/api/v1/agents/{agent.id}/heartbeat", json={}),
        agent.client.get(f"/api/v1/agents/{agent.id}/work"),
    ):
        assert call.status_code == 410
        assert call.json()["message"] == "Agent has been retired: host gone"
    assert plane.operator.delete(f"/api/v1/agents/{agent.id}").status_code == 204
    assert [a["id"] for a in plane.operator.get("/api/v1/agents/retired").json()["data"]] == [agent.id]
    assert agent.id not in {a["id"] for a in plane.operator.get("/api/v1/agents").json()["data"]}


def test_sentinel_agents_cannot_be_retired(plane: Plane) -> None:
    assert (
        plane.operator.delete("/api/v1/agents/server-scanner", params={"force": "true", "reason": "x"}).status_code
        == 403
    )
