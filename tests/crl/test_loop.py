"""The `crl-refresh` loop: a singleton that rebuilds every local CA's CRL, not at start-up, and can be run now."""

from __future__ import annotations

from fastapi.testclient import TestClient

from certctl.app import create_app
from certctl.context import AppContext
from certctl.crl.service import RefreshSummary
from certctl.scheduler.runner import ManualTicks
from certctl.worker import CRL_REFRESH_LOOP, build_background
from tests.conftest import API_KEYS
from tests.crl.conftest import ISSUER


def test_the_loop_waits_for_its_interval_and_rebuilds_on_run_now(seeded: AppContext) -> None:
    background = build_background(seeded, ticks=ManualTicks())
    headers = {"Authorization": f"Bearer {API_KEYS['admin'][0]}"}
    with TestClient(create_app(seeded, background), base_url="https://testserver", headers=headers) as client:
        assert client.get("/api/v1/admin/crl/cache").json()["issuers"][0]["cache_present"] is False  # not at start
        response = client.post(f"/api/v1/admin/scheduler/run-now/{CRL_REFRESH_LOOP}")
        assert response.status_code == 202, response.text
        run = background.scheduler._states[CRL_REFRESH_LOOP].current
        assert run is None or run.wait(30)
        stats = background.scheduler.stats()[CRL_REFRESH_LOOP]
        assert stats.last_summary == RefreshSummary(regenerated=1)
        entry = client.get("/api/v1/admin/crl/cache").json()["issuers"][0]
    assert (entry["issuer_id"], entry["crl_number"], entry["events"][0]["trigger"]) == (ISSUER, 1, "scheduled")
