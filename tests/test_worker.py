"""The background loops wired together: issuance, automatic renewal when the window opens, run-now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from certctl.app import create_app
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.scheduler.runner import ManualTicks
from certctl.worker import JOB_PROCESSOR_LOOP, RENEWAL_LOOP, build_background
from tests.conftest import API_KEYS
from tests.factories import seed_inventory

BASE = {"owner_id": "o-alice", "team_id": "t-web", "issuer_id": "iss-local", "renewal_policy_id": "rp-default"}


@pytest.fixture
def running(context_factory: Any) -> Any:
    from fastapi.testclient import TestClient

    clock = FrozenClock()
    context: AppContext = context_factory(clock, keygen_mode="server")
    seed_inventory(context)
    background = build_background(context, ticks=ManualTicks())
    app = create_app(context, background)
    with TestClient(
        app, base_url="https://testserver", headers={"Authorization": f"Bearer {API_KEYS['admin'][0]}"}
    ) as client:
        yield client, clock, background


def run_loop(client: Any, background: Any, loop: str) -> None:
    response = client.post(f"/api/v1/admin/scheduler/run-now/{loop}")
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "started", "loop": loop}
    stats = background.scheduler.stats()[loop]
    deadline_ok = [h.wait(30) for h in [background.scheduler._states[loop].current] if h is not None]
    assert all(deadline_ok)
    assert stats.name == loop


def test_a_certificate_is_issued_then_renewed_automatically_when_its_window_opens(running: Any) -> None:
    client, clock, background = running
    cert = client.post("/api/v1/certificates", json={"name": "web", "common_name": "web.example.com"} | BASE).json()
    run_loop(client, background, JOB_PROCESSOR_LOOP)
    issued = client.get(f"/api/v1/certificates/{cert['id']}").json()
    assert issued["status"] == "Active"
    first_expiry = issued["expires_at"]

    clock.advance(timedelta(days=59))  # 90-day certificate, rp-default opens the window 30 days before expiry
    run_loop(client, background, RENEWAL_LOOP)
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "Active"

    clock.advance(timedelta(days=2))
    run_loop(client, background, RENEWAL_LOOP)
    assert client.get(f"/api/v1/certificates/{cert['id']}").json()["status"] == "RenewalInProgress"
    run_loop(client, background, JOB_PROCESSOR_LOOP)
    renewed = client.get(f"/api/v1/certificates/{cert['id']}").json()
    assert renewed["status"] == "Active"
    assert renewed["expires_at"] > first_expiry
    versions = client.get(f"/api/v1/certificates/{cert['id']}/versions").json()
    assert versions["total"] == 2
    jobs = client.get("/api/v1/jobs", params={"certificate_id": cert["id"]}).json()["data"]
    assert sorted((j["type"], j["status"]) for j in jobs) == [("Issuance", "Completed"), ("Renewal", "Completed")]


def test_run_now_answers_404_for_an_unknown_loop_and_needs_admin(running: Any) -> None:
    client, _, _ = running
    unknown = client.post("/api/v1/admin/scheduler/run-now/nope")
    assert unknown.status_code == 404
    assert "job-processor" in unknown.json()["message"]
    operator = client.post(
        "/api/v1/admin/scheduler/run-now/renewal", headers={"Authorization": f"Bearer {API_KEYS['operator'][0]}"}
    )
    assert operator.status_code == 403
