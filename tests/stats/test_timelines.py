"""Breakdowns and day series: certificates by status, expiration timeline, job trends, issuance rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from certctl.certificates.models import CertificateStatus
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import JobStatus
from certctl.stats.service import StatsService
from certctl.stats.store import StatsStore
from tests.stats.conftest import add_certificates, add_jobs

DAY = timedelta(days=1)
SERIES = ("/api/v1/stats/expiration-timeline", "/api/v1/stats/job-trends", "/api/v1/stats/issuance-rate")


@pytest.fixture
def afternoon(clock: FrozenClock) -> datetime:
    """Move the frozen clock to 2026-01-01T15:00Z, so "today" has both a past and a future part."""
    clock.advance(timedelta(hours=15))
    return clock.now()


# --- certificates by status -----------------------------------------------------------------------------


def test_active_rows_are_rebucketed_by_expiry_and_other_statuses_kept(
    ctx: AppContext, api: TestClient, clock: FrozenClock
) -> None:
    now = clock.now()
    add_certificates(ctx, 4, prefix="mc-fine", expires_at=now + 60 * DAY)
    add_certificates(ctx, 2, prefix="mc-no-expiry", expires_at=None)
    add_certificates(ctx, 3, prefix="mc-soon", expires_at=now + 5 * DAY)
    add_certificates(ctx, 5, prefix="mc-lapsed", expires_at=now - DAY)
    add_certificates(ctx, 1, prefix="mc-marked-expired", status=CertificateStatus.EXPIRED, expires_at=now + 60 * DAY)
    add_certificates(ctx, 2, prefix="mc-renewing", status=CertificateStatus.RENEWAL_IN_PROGRESS, expires_at=now - DAY)
    add_certificates(ctx, 1, prefix="mc-revoked", status=CertificateStatus.REVOKED, expires_at=now + 5 * DAY)
    add_certificates(ctx, 1, prefix="mc-archived", status=CertificateStatus.ARCHIVED)

    response = api.get("/api/v1/stats/certificates-by-status")
    assert response.status_code == 200
    assert response.json() == [
        {"status": "Active", "count": 6},
        {"status": "Expiring", "count": 3},
        {"status": "Expired", "count": 6},
        {"status": "RenewalInProgress", "count": 2},
        {"status": "Revoked", "count": 1},
        {"status": "Archived", "count": 1},
    ]


def test_legacy_status_spellings_are_normalised_into_one_bucket(ctx: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    add_certificates(ctx, 2, prefix="mc-canonical", status=CertificateStatus.RENEWAL_IN_PROGRESS)
    add_certificates(ctx, 3, prefix="mc-legacy", expires_at=now + 60 * DAY)
    add_certificates(ctx, 1, prefix="mc-legacy-lapsed", expires_at=now - DAY)
    with ctx.db.begin() as session:
        # The original's lower-case and snake_case spellings, as an imported database may hold them.
        session.execute(text("UPDATE managed_certificates SET status = 'renewal_in_progress' WHERE id = 'mc-legacy-0'"))
        session.execute(text("UPDATE managed_certificates SET status = 'active' WHERE id = 'mc-legacy-1'"))
        session.execute(
            text("UPDATE managed_certificates SET status = '' WHERE id IN ('mc-legacy-2', 'mc-legacy-lapsed-0')")
        )

    counts = StatsService(ctx.db, ctx.clock, started_at=now).certificates_by_status()
    assert [(c.status, c.count) for c in counts] == [("Active", 2), ("Expired", 1), ("RenewalInProgress", 3)]


# --- expiration timeline ----------------------------------------------------------------------------------


def test_the_expiration_timeline_lists_each_of_the_next_days_zero_filled(
    ctx: AppContext, api: TestClient, afternoon: datetime
) -> None:
    today = datetime(2026, 1, 1, tzinfo=UTC)
    add_certificates(ctx, 1, prefix="mc-this-morning", expires_at=today + timedelta(hours=9))  # already past
    add_certificates(ctx, 2, prefix="mc-tonight", expires_at=today + timedelta(hours=23, minutes=59))
    add_certificates(ctx, 3, prefix="mc-day-3", expires_at=today + 3 * DAY + timedelta(hours=1))
    add_certificates(ctx, 1, prefix="mc-last-day", expires_at=today + 29 * DAY + timedelta(hours=23))
    add_certificates(ctx, 4, prefix="mc-day-30", expires_at=today + 30 * DAY)  # first day after the window
    add_certificates(ctx, 1, prefix="mc-revoked", status=CertificateStatus.REVOKED, expires_at=today + 3 * DAY)

    response = api.get("/api/v1/stats/expiration-timeline")
    assert response.status_code == 200
    timeline = response.json()
    assert len(timeline) == 30
    assert timeline[0] == {"date": "2026-01-01", "count": 2}
    assert timeline[3] == {"date": "2026-01-04", "count": 4}
    assert timeline[29] == {"date": "2026-01-30", "count": 1}
    assert sum(day["count"] for day in timeline) == 7
    assert all(day["count"] == 0 for i, day in enumerate(timeline) if i not in (0, 3, 29))


def test_the_expiration_timeline_honours_days(ctx: AppContext, api: TestClient, clock: FrozenClock) -> None:
    add_certificates(ctx, 1, prefix="mc-late", expires_at=clock.now() + 300 * DAY)
    assert api.get("/api/v1/stats/expiration-timeline", params={"days": 1}).json() == [
        {"date": "2026-01-01", "count": 0}
    ]
    year = api.get("/api/v1/stats/expiration-timeline", params={"days": 365}).json()
    assert len(year) == 365
    assert year[-1]["date"] == "2026-12-31"
    assert year[300] == {"date": "2026-10-28", "count": 1}


def test_days_are_utc_days_whatever_the_database_session_time_zone(ctx: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    add_certificates(ctx, 1, prefix="mc-late-evening", expires_at=now + timedelta(hours=23, minutes=30))
    with ctx.db.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))  # UTC+14 would say 2 January
        counts = StatsStore(session).expirations_by_day(now, now + 2 * DAY)
    assert counts == {"2026-01-01": 1}


# --- job trends ---------------------------------------------------------------------------------------------


def test_job_trends_count_outcomes_by_completion_day_over_the_last_days(
    ctx: AppContext, api: TestClient, afternoon: datetime
) -> None:
    today = datetime(2026, 1, 1, tzinfo=UTC)
    (cert,) = add_certificates(ctx, 1, prefix="mc-jobs", expires_at=today + 90 * DAY)
    add_jobs(ctx, cert, 3, prefix="job-ok-today", status=JobStatus.COMPLETED, completed_at=today + timedelta(hours=1))
    add_jobs(ctx, cert, 1, prefix="job-bad-today", status=JobStatus.FAILED, completed_at=today + timedelta(hours=2))
    add_jobs(
        ctx, cert, 2, prefix="job-retrying", status=JobStatus.FAILED, completed_at=today, next_retry_at=today + DAY
    )  # not an outcome yet
    add_jobs(ctx, cert, 2, prefix="job-bad-6", status=JobStatus.FAILED, completed_at=today - 6 * DAY)
    add_jobs(ctx, cert, 5, prefix="job-old", status=JobStatus.COMPLETED, completed_at=today - 7 * DAY)
    add_jobs(ctx, cert, 4, prefix="job-cancelled", status=JobStatus.CANCELLED, completed_at=today)

    response = api.get("/api/v1/stats/job-trends", params={"days": 7})
    assert response.status_code == 200
    trends = response.json()
    assert [t["date"] for t in trends] == [f"2025-12-{d}" for d in range(26, 32)] + ["2026-01-01"]
    assert trends[0] == {"date": "2025-12-26", "completed_count": 0, "failed_count": 2, "success_rate": 0.0}
    assert trends[1] == {"date": "2025-12-27", "completed_count": 0, "failed_count": 0, "success_rate": 0.0}
    assert trends[-1] == {"date": "2026-01-01", "completed_count": 3, "failed_count": 1, "success_rate": 75.0}
    assert len(api.get("/api/v1/stats/job-trends").json()) == 30


# --- issuance rate -------------------------------------------------------------------------------------------


def test_issuance_rate_counts_certificates_by_creation_day(
    ctx: AppContext, api: TestClient, afternoon: datetime
) -> None:
    today = datetime(2026, 1, 1, tzinfo=UTC)
    add_certificates(ctx, 2, prefix="mc-today", created_at=today + timedelta(minutes=5))
    add_certificates(ctx, 3, prefix="mc-yesterday", created_at=today - timedelta(minutes=5))
    add_certificates(ctx, 1, prefix="mc-29-days-ago", created_at=today - 29 * DAY)
    add_certificates(ctx, 7, prefix="mc-30-days-ago", created_at=today - 30 * DAY)

    response = api.get("/api/v1/stats/issuance-rate")
    assert response.status_code == 200
    rate = response.json()
    assert len(rate) == 30
    assert rate[0] == {"date": "2025-12-03", "issued_count": 1}
    assert rate[-2] == {"date": "2025-12-31", "issued_count": 3}
    assert rate[-1] == {"date": "2026-01-01", "issued_count": 2}
    assert sum(day["issued_count"] for day in rate) == 6


# --- days bounds -----------------------------------------------------------------------------------------------


def test_days_outside_1_to_365_or_not_a_whole_number_is_a_400(api: TestClient) -> None:
    for path in SERIES:
        for days in ("0", "-1", "366", "100000", "abc", "1.5", ""):
            response = api.get(path, params={"days": days})
            assert response.status_code == 400, (path, days)
            body = response.json()
            assert body["error"] == "Bad Request"
            assert "days" in body["message"], body
        for days in ("1", "365"):
            assert api.get(path, params={"days": days}).status_code == 200, (path, days)
