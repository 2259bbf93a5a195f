"""GET /api/v1/metrics (JSON), /api/v1/metrics/prometheus and /metrics (text format 0.0.4, §12.2 names)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from certctl.certificates.models import CertificateStatus
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import JobStatus
from certctl.stats import exposition
from certctl.stats.api import stats_service
from certctl.stats.service import StatsService
from tests.stats.conftest import add_certificates, add_heartbeating_agent, add_jobs, stats_app, stats_client

DAY = timedelta(days=1)
GAUGES = {
    "certctl_certificate_total": 10,
    "certctl_certificate_active": 4,
    "certctl_certificate_expiring_soon": 3,
    "certctl_certificate_expired": 2,
    "certctl_certificate_revoked": 1,
    "certctl_agent_total": 2,
    "certctl_agent_online": 1,
    "certctl_job_pending": 3,
}
COUNTERS = {"certctl_job_completed_total": 4, "certctl_job_failed_total": 1, "certctl_notification_dead_total": 0}


@pytest.fixture
def inventory(ctx: AppContext, clock: FrozenClock) -> AppContext:
    """10 certificates (4 active, 3 expiring, 2 expired, 1 revoked), 2 agents (1 online), 8 jobs."""
    now = clock.now()
    (cert, *_) = add_certificates(ctx, 4, prefix="mc-active", expires_at=now + 90 * DAY)
    add_certificates(ctx, 3, prefix="mc-expiring", expires_at=now + 7 * DAY)
    add_certificates(ctx, 2, prefix="mc-expired", expires_at=now - 7 * DAY)
    add_certificates(ctx, 1, prefix="mc-revoked", status=CertificateStatus.REVOKED, expires_at=now + 90 * DAY)
    add_heartbeating_agent(ctx, "ag-online", now - timedelta(minutes=1))
    add_heartbeating_agent(ctx, "ag-gone", now - timedelta(hours=1))
    add_jobs(ctx, cert, 2, prefix="job-pending", status=JobStatus.PENDING)
    add_jobs(ctx, cert, 1, prefix="job-retrying", status=JobStatus.FAILED, next_retry_at=now + DAY, completed_at=now)
    add_jobs(ctx, cert, 1, prefix="job-failed", status=JobStatus.FAILED, completed_at=now)
    add_jobs(ctx, cert, 4, prefix="job-done", status=JobStatus.COMPLETED, completed_at=now)
    return ctx


@pytest.fixture
def started(inventory: AppContext, clock: FrozenClock) -> Iterator[TestClient]:
    """A client whose context records its start, as AppContext.started_at will once wired; 90 s later."""
    inventory.started_at = clock.now()
    clock.advance(timedelta(seconds=90))
    with stats_client(inventory) as client:
        yield client


def test_json_metrics_carry_gauges_counters_and_uptime(started: TestClient) -> None:
    response = started.get("/api/v1/metrics")
    assert response.status_code == 200
    assert response.json() == {
        "gauge": {
            "certificate_total": 10,
            "certificate_active": 4,
            "certificate_expiring_soon": 3,
            "certificate_expired": 2,
            "certificate_revoked": 1,
            "agent_total": 2,
            "agent_online": 1,
            "job_pending": 3,
        },
        "counter": {"job_completed_total": 4, "job_failed_total": 1, "notifications_dead_total": 0},
        "uptime": {
            "uptime_seconds": 90,
            "server_started": "2026-01-01T00:00:00Z",
            "measured_at": "2026-01-01T00:01:30Z",
        },
    }


@pytest.mark.parametrize("path", ["/api/v1/metrics/prometheus", "/metrics"])
def test_prometheus_exposition_parses_and_carries_the_original_names(started: TestClient, path: str) -> None:
    response = started.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    samples = {s.name: s.value for family in families.values() for s in family.samples if not s.labels}
    types = {s.name: family.type for family in families.values() for s in family.samples}

    assert {name: samples[name] for name in GAUGES} == GAUGES
    assert {name: samples[name] for name in COUNTERS} == COUNTERS
    assert samples["certctl_uptime_seconds"] == 90
    assert all(types[name] == "gauge" for name in [*GAUGES, "certctl_uptime_seconds"])
    assert all(types[name] == "counter" for name in COUNTERS)
    for name in [*GAUGES, *COUNTERS, "certctl_uptime_seconds"]:
        assert f"# HELP {name} " in response.text
        kind = "counter" if name in COUNTERS else "gauge"
        assert f"# TYPE {name} {kind}\n" in response.text
    assert "certctl_certificate_not_after_seconds" not in response.text  # off by default (cardinality)


def test_the_per_certificate_expiry_gauge_appears_only_when_enabled(inventory: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    add_certificates(ctx := inventory, 1, prefix="mc-no-expiry", status=CertificateStatus.PENDING)
    add_certificates(ctx, 1, prefix="mc-archived", status=CertificateStatus.ARCHIVED, expires_at=now + DAY)
    app = stats_app(ctx)
    app.dependency_overrides[stats_service] = lambda: StatsService(
        ctx.db, ctx.clock, started_at=now, per_certificate_metrics=True
    )
    with stats_client(ctx, app=app) as client:
        text = client.get("/metrics").text

    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "certctl_certificate_not_after_seconds"]
    assert family.type == "gauge"
    series = {(s.labels["certificate_id"], s.labels["common_name"]): s.value for s in family.samples}
    assert len(series) == 10  # every certificate with an expiry, archived and never-issued ones excluded
    assert series[("mc-active-0", "mc-active-0.example.com")] == (now + 90 * DAY).timestamp()
    assert series[("mc-expired-1", "mc-expired-1.example.com")] == (now - 7 * DAY).timestamp()


def test_uptime_is_measured_on_the_injected_clock_and_never_negative(ctx: AppContext, clock: FrozenClock) -> None:
    service = StatsService(ctx.db, ctx.clock, started_at=clock.now())
    clock.advance(timedelta(hours=2, seconds=5, milliseconds=900))
    assert service.metrics().uptime.uptime_seconds == 7205
    ahead = StatsService(ctx.db, ctx.clock, started_at=clock.now() + timedelta(minutes=1))
    assert ahead.metrics().uptime.uptime_seconds == 0


def test_extra_collectors_are_appended_to_the_exposition(ctx: AppContext, clock: FrozenClock) -> None:
    registry = CollectorRegistry()
    Counter("certctl_ocsp_counter", "OCSP events.", ["label"], registry=registry).labels("request_get").inc(3)
    snapshot = StatsService(ctx.db, ctx.clock, started_at=clock.now()).metrics()
    text = exposition.render(snapshot, extra=(registry,)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["certctl_ocsp_counter"].samples[0].value == 3
    assert "certctl_certificate_total" in families
