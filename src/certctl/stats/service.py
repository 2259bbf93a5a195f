"""Dashboard statistics and the metrics snapshot, computed at the injected clock's "now"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from certctl.certificates.models import CertificateStatus
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import ValidationFailed
from certctl.stats.store import CertificateExpiry, StatsStore

EXPIRING_WINDOW = timedelta(days=30)  # "expiring soon" on the dashboard and in metrics (core.md §12.1)
ACTIVE_AGENT_WINDOW = timedelta(minutes=5)  # an agent heard from this recently counts as active
# Folding rewrites every kept count (a few thousand rows at most), so it waits for this many changes.
FOLD_AFTER_ROWS = 2_000
DEFAULT_DAYS = 30
MAX_DAYS = 365

# The original lower-cases stored statuses before counting, so legacy spellings land in one bucket.
_CANONICAL_STATUS = {status.value.lower(): status.value for status in CertificateStatus} | {
    "renewal_in_progress": CertificateStatus.RENEWAL_IN_PROGRESS.value
}
# Stored values the original re-buckets by expiry (compared lower-cased); "" is its legacy unset status.
_REBUCKETED_STATUSES = frozenset({"active", ""})
_STATUS_ORDER = {status.value: position for position, status in enumerate(CertificateStatus)}


@dataclass(frozen=True, slots=True)
class DashboardSummary:
    total_certificates: int
    expiring_certificates: int
    expired_certificates: int
    revoked_certificates: int
    total_agents: int
    active_agents: int
    offline_agents: int
    pending_jobs: int
    failed_jobs: int  # terminal failures only: a job awaiting its retry is pending
    complete_jobs: int
    notifications_dead: int
    completed_at: datetime

    @property
    def active_certificates(self) -> int:
        """Neither expiring, expired nor revoked (the metrics' certificate_active, as the original)."""
        return (
            self.total_certificates - self.expiring_certificates - self.expired_certificates - self.revoked_certificates
        )


@dataclass(frozen=True, slots=True)
class StatusCount:
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class DayCount:
    date: str  # YYYY-MM-DD, UTC
    count: int


@dataclass(frozen=True, slots=True)
class JobTrend:
    date: str  # YYYY-MM-DD, UTC
    completed_count: int
    failed_count: int

    @property
    def success_rate(self) -> float:
        """Completed share of the day's outcomes, 0-100; 0 on a day without any."""
        outcomes = self.completed_count + self.failed_count
        return self.completed_count * 100.0 / outcomes if outcomes else 0.0


@dataclass(frozen=True, slots=True)
class Uptime:
    server_started: datetime
    measured_at: datetime

    @property
    def uptime_seconds(self) -> int:
        """Whole seconds since start; never negative, even if the clock was set back."""
        return max(0, int((self.measured_at - self.server_started).total_seconds()))


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    summary: DashboardSummary
    uptime: Uptime
    certificate_expiries: Sequence[CertificateExpiry] | None = None  # None unless per-certificate metrics are on


class StatsService:
    """Read-only: opens one short transaction per question and writes nothing."""

    def __init__(
        self, db: Database, clock: Clock, *, started_at: datetime, per_certificate_metrics: bool = False
    ) -> None:
        if started_at.tzinfo is None:
            raise ValueError("started_at must be an aware UTC instant")
        self._db, self._clock = db, clock
        self._started_at = started_at
        self._per_certificate = per_certificate_metrics

    def summary(self) -> DashboardSummary:
        """The dashboard counts at the clock's now; folds the kept counts when many changes piled up."""
        now = self._clock.now()
        with self._db.read() as session:
            counts = StatsStore(session).summary_counts(
                now, expiring_before=now + EXPIRING_WINDOW, heartbeat_after=now - ACTIVE_AGENT_WINDOW
            )
        if counts.unfolded_counts > FOLD_AFTER_ROWS:
            self.fold_counts()
        return DashboardSummary(
            total_certificates=counts.total_certificates,
            expiring_certificates=counts.expiring_certificates,
            expired_certificates=counts.expired_certificates,
            revoked_certificates=counts.revoked_certificates,
            total_agents=counts.total_agents,
            active_agents=counts.active_agents,
            offline_agents=counts.total_agents - counts.active_agents,
            pending_jobs=counts.pending_jobs,
            failed_jobs=counts.failed_jobs,
            complete_jobs=counts.complete_jobs,
            notifications_dead=counts.notifications_dead,
            completed_at=now,
        )

    def fold_counts(self) -> int:
        """Sum the counts kept on write into one row per key (status_counts); returns the rows folded.

        The summary does this itself once more than FOLD_AFTER_ROWS changes are waiting; a periodic loop may
        call it too. Writers never wait for it.
        """
        with self._db.begin() as session:
            return StatsStore(session).fold_counts()

    def certificates_by_status(self) -> list[StatusCount]:
        """Counts per normalised status, in lifecycle order; statuses with no certificate are left out.

        As the original, rows stored as Active (any case) or blank are re-bucketed by expiry into Expired,
        Expiring (within 30 days) or Active; every other status is kept as stored.
        """
        now = self._clock.now()
        with self._db.begin() as session:
            store = StatsStore(session)
            stored = store.certificate_status_counts()
            rebucketed = [status for status, _ in stored if status.lower() in _REBUCKETED_STATUSES]
            expired, expiring = (
                store.expiry_split(rebucketed, now, expiring_before=now + EXPIRING_WINDOW) if rebucketed else (0, 0)
            )
        merged: dict[str, int] = {}
        for status, count in stored:
            bucket = _CANONICAL_STATUS.get(status.lower(), status)
            merged[bucket] = merged.get(bucket, 0) + count
        if rebucketed:
            active = CertificateStatus.ACTIVE.value
            merged[active] = merged.get(active, 0) + merged.pop("", 0) - expired - expiring
            for status, moved in (
                (CertificateStatus.EXPIRED.value, expired),
                (CertificateStatus.EXPIRING.value, expiring),
            ):
                merged[status] = merged.get(status, 0) + moved
        ordered = sorted(
            ((status, count) for status, count in merged.items() if count > 0),
            key=lambda item: (_STATUS_ORDER.get(item[0], len(_STATUS_ORDER)), item[0]),
        )
        return [StatusCount(status=status, count=count) for status, count in ordered]

    def expiration_timeline(self, days: int = DEFAULT_DAYS) -> list[DayCount]:
        """Certificates expiring on each of the next `days` UTC days, today first, zero-filled.

        Raises ValidationFailed unless 1 ≤ days ≤ 365.
        """
        _check_days(days)
        now = self._clock.now()
        today = now.astimezone(UTC).date()
        with self._db.begin() as session:
            counts = StatsStore(session).expirations_by_day(now, _midnight(today + timedelta(days=days)))
        return [DayCount(date=day, count=counts.get(day, 0)) for day in _day_range(today, days)]

    def job_trends(self, days: int = DEFAULT_DAYS) -> list[JobTrend]:
        """Completed and terminally failed jobs on each of the last `days` UTC days (by completed_at).

        Raises ValidationFailed unless 1 ≤ days ≤ 365.
        """
        _check_days(days)
        first = _today(self._clock) - timedelta(days=days - 1)
        with self._db.begin() as session:
            outcomes = StatsStore(session).job_outcomes_by_day(
                _midnight(first), _midnight(first + timedelta(days=days))
            )
        return [
            JobTrend(date=day, completed_count=outcomes.get(day, (0, 0))[0], failed_count=outcomes.get(day, (0, 0))[1])
            for day in _day_range(first, days)
        ]

    def issuance_rate(self, days: int = DEFAULT_DAYS) -> list[DayCount]:
        """Certificates created on each of the last `days` UTC days, zero-filled.

        Counts managed certificates by created_at as the original does; renewals and re-issues (new rows in
        certificate_versions) are not counted. Raises ValidationFailed unless 1 ≤ days ≤ 365.
        """
        _check_days(days)
        first = _today(self._clock) - timedelta(days=days - 1)
        with self._db.begin() as session:
            counts = StatsStore(session).certificates_created_by_day(
                _midnight(first), _midnight(first + timedelta(days=days))
            )
        return [DayCount(date=day, count=counts.get(day, 0)) for day in _day_range(first, days)]

    def metrics(self) -> MetricsSnapshot:
        """The summary, the uptime and, when enabled, every certificate's expiry for the labelled gauge."""
        summary = self.summary()
        expiries: Sequence[CertificateExpiry] | None = None
        if self._per_certificate:
            with self._db.begin() as session:
                expiries = StatsStore(session).certificate_expiries()
        return MetricsSnapshot(
            summary=summary,
            uptime=Uptime(server_started=self._started_at, measured_at=summary.completed_at),
            certificate_expiries=expiries,
        )


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise ValidationFailed(f"days must be between 1 and {MAX_DAYS}")


def _today(clock: Clock) -> date:
    return clock.now().astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_range(first: date, days: int) -> list[str]:
    return [(first + timedelta(days=offset)).isoformat() for offset in range(days)]
