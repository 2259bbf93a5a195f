"""GET /api/v1/stats/summary: every count is one SQL aggregate over every row, at the injected clock's now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from certctl.certificates.models import CertificateStatus
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import JobStatus
from certctl.stats.service import StatsService
from tests.stats.conftest import add_certificates, add_heartbeating_agent, add_jobs, stats_client

DAY = timedelta(days=1)


def summary(api: TestClient) -> dict[str, Any]:
    response = api.get("/api/v1/stats/summary")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_empty_inventory_counts_zero_everywhere(api: TestClient, clock: FrozenClock) -> None:
    body = summary(api)
    assert body == {
        "total_certificates": 0,
        "expiring_certificates": 0,
        "expired_certificates": 0,
        "revoked_certificates": 0,
        "total_agents": 0,
        "active_agents": 0,
        "offline_agents": 0,
        "pending_jobs": 0,
        "failed_jobs": 0,
        "complete_jobs": 0,
        "notifications_dead": 0,
        "completed_at": "2026-01-01T00:00:00Z",
    }


def test_a_mixed_inventory_of_over_500_certificates_is_counted_in_full(
    ctx: AppContext, api: TestClient, clock: FrozenClock
) -> None:
    now = clock.now()
    add_certificates(ctx, 700, prefix="mc-healthy", expires_at=now + 90 * DAY)
    add_certificates(ctx, 130, prefix="mc-soon", expires_at=now + 10 * DAY)
    add_certificates(
        ctx, 60, prefix="mc-soon-renewing", status=CertificateStatus.RENEWAL_IN_PROGRESS, expires_at=now + 20 * DAY
    )
    add_certificates(ctx, 80, prefix="mc-lapsed", expires_at=now - 3 * DAY)
    add_certificates(ctx, 25, prefix="mc-marked-expired", status=CertificateStatus.EXPIRED, expires_at=now + 5 * DAY)
    add_certificates(ctx, 40, prefix="mc-revoked", status=CertificateStatus.REVOKED, expires_at=now + 90 * DAY)
    add_certificates(ctx, 15, prefix="mc-revoked-lapsed", status=CertificateStatus.REVOKED, expires_at=now - DAY)
    add_certificates(ctx, 35, prefix="mc-never-issued", status=CertificateStatus.PENDING)

    body = summary(api)

    assert body["total_certificates"] == 1085
    assert body["expiring_certificates"] == 190  # any status but Revoked/Expired, expiring within 30 days
    assert body["expired_certificates"] == 105  # past expiry, or marked Expired; revoked ones are only revoked
    assert body["revoked_certificates"] == 55


def test_expiry_boundaries_follow_the_frozen_clock(ctx: AppContext, api: TestClient, clock: FrozenClock) -> None:
    now = clock.now()
    second = timedelta(seconds=1)
    add_certificates(ctx, 1, prefix="mc-just-expired", expires_at=now - second)
    add_certificates(ctx, 1, prefix="mc-expires-now", expires_at=now)  # neither: (now, now+30d) is open
    add_certificates(ctx, 1, prefix="mc-just-expiring", expires_at=now + second)
    add_certificates(ctx, 1, prefix="mc-last-expiring", expires_at=now + 30 * DAY - second)
    add_certificates(ctx, 1, prefix="mc-at-30-days", expires_at=now + 30 * DAY)
    add_certificates(ctx, 1, prefix="mc-no-expiry", expires_at=None)

    body = summary(api)
    assert (body["expired_certificates"], body["expiring_certificates"]) == (1, 2)

    clock.advance(2 * second)  # mc-expires-now and mc-just-expiring have now lapsed; mc-at-30-days is inside
    body = summary(api)
    assert (body["expired_certificates"], body["expiring_certificates"]) == (3, 2)
    assert body["completed_at"] == "2026-01-01T00:00:02Z"


def test_agents_count_when_not_retired_and_active_when_heard_from_in_the_last_five_minutes(
    ctx: AppContext, api: TestClient, clock: FrozenClock
) -> None:
    now = clock.now()
    add_heartbeating_agent(ctx, "ag-fresh", now - timedelta(minutes=4, seconds=59))
    add_heartbeating_agent(ctx, "ag-now", now)
    add_heartbeating_agent(ctx, "ag-five-minutes", now - timedelta(minutes=5))
    add_heartbeating_agent(ctx, "ag-silent", None)
    add_heartbeating_agent(ctx, "ag-retired", now, retired=True)

    body = summary(api)
    assert (body["total_agents"], body["active_agents"], body["offline_agents"]) == (4, 2, 2)


def test_jobs_awaiting_a_retry_are_pending_and_only_terminal_failures_count_as_failed(
    ctx: AppContext, api: TestClient, clock: FrozenClock
) -> None:
    now = clock.now()
    (cert,) = add_certificates(ctx, 1, prefix="mc-jobs", expires_at=now + 90 * DAY)
    add_jobs(ctx, cert, 3, prefix="job-pending", status=JobStatus.PENDING)
    add_jobs(ctx, cert, 2, prefix="job-csr", status=JobStatus.AWAITING_CSR)
    add_jobs(ctx, cert, 1, prefix="job-approval", status=JobStatus.AWAITING_APPROVAL)
    add_jobs(ctx, cert, 4, prefix="job-running", status=JobStatus.RUNNING)
    add_jobs(ctx, cert, 5, prefix="job-retrying", status=JobStatus.FAILED, next_retry_at=now + DAY, completed_at=now)
    add_jobs(ctx, cert, 6, prefix="job-failed", status=JobStatus.FAILED, completed_at=now)
    add_jobs(ctx, cert, 7, prefix="job-done", status=JobStatus.COMPLETED, completed_at=now)
    add_jobs(ctx, cert, 8, prefix="job-cancelled", status=JobStatus.CANCELLED, completed_at=now)

    body = summary(api)
    assert (body["pending_jobs"], body["failed_jobs"], body["complete_jobs"]) == (15, 6, 7)
    assert body["notifications_dead"] == 0


def test_the_summary_is_one_select_statement(ctx: AppContext, clock: FrozenClock) -> None:
    add_certificates(ctx, 3, prefix="mc", expires_at=clock.now() + DAY)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", record)
    try:
        StatsService(ctx.db, ctx.clock, started_at=clock.now()).summary()
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", record)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements
    assert "count(" in selects[0].lower()
    assert "status_counts" in selects[0]
    assert "notification_events" in selects[0]  # the dead-letter count rides along


def test_every_stats_route_requires_authentication_and_any_role_may_read(ctx: AppContext) -> None:
    paths = [
        "/api/v1/stats/summary",
        "/api/v1/stats/certificates-by-status",
        "/api/v1/stats/expiration-timeline",
        "/api/v1/stats/job-trends",
        "/api/v1/stats/issuance-rate",
        "/api/v1/metrics",
        "/api/v1/metrics/prometheus",
        "/metrics",
    ]
    with stats_client(ctx, role=None) as anonymous:
        for path in paths:
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "Authorization header required"
    with stats_client(ctx, role=None) as wrong_key:
        assert wrong_key.get("/metrics", headers={"Authorization": "Bearer nope-0123456789"}).status_code == 401
    for role in ("viewer", "auditor"):
        with stats_client(ctx, role=role) as reader:
            for path in paths:
                assert reader.get(path).status_code == 200, (role, path)
