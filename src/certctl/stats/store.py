"""Stats queries: every answer is computed by the database in one aggregate statement over all rows.

Nothing here pages, and no certificate, agent or job row is loaded into Python (the original counted a
50-row page, core.md §12.1 ⚠). The one exception is `certificate_expiries`, the opt-in per-certificate
gauge, which by definition needs one value per certificate. The summary reads the counts kept on write
(stats/models.py) rather than counting rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Date,
    ScalarSelect,
    Select,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import QueryableAttribute, Session

from certctl.agents.models import Agent
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.jobs.models import Job, JobStatus
from certctl.notifications.models import NotificationEvent, NotificationStatus
from certctl.stats.models import JOB_RETRYING_STATE, StatusCountRow

# Jobs still on their way to an outcome (core.md §12.1); a Failed job with next_retry_at is one too.
OPEN_JOB_STATUSES = (JobStatus.PENDING, JobStatus.AWAITING_CSR, JobStatus.AWAITING_APPROVAL, JobStatus.RUNNING)
_PENDING_JOB_STATES = (*(status.value for status in OPEN_JOB_STATUSES), JOB_RETRYING_STATE)
# Revoked and Expired certificates are only that; every other status is re-bucketed by its expiry.
_DECIDED = (CertificateStatus.REVOKED.value, CertificateStatus.EXPIRED.value)
FOLD_LOCK_ID = 0x63657274_0004  # pg advisory lock id while folding status_counts ("cert", revision 0004)


@dataclass(frozen=True, slots=True)
class SummaryCounts:
    total_certificates: int
    expiring_certificates: int
    expired_certificates: int
    revoked_certificates: int
    total_agents: int
    active_agents: int
    pending_jobs: int
    failed_jobs: int
    complete_jobs: int
    unfolded_counts: int  # status_counts rows not folded yet (StatsStore.fold_counts)
    notifications_dead: int


@dataclass(frozen=True, slots=True)
class CertificateExpiry:
    certificate_id: str
    common_name: str
    expires_at: datetime


class StatsStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def summary_counts(self, now: datetime, expiring_before: datetime, heartbeat_after: datetime) -> SummaryCounts:
        """All dashboard counts in one statement and one round trip.

        Counts by status come from status_counts (kept on write by triggers, revision 0004): a sum over a few
        hundred rows instead of a COUNT over every certificate and job. The counts that depend on "now" are
        sums over whole UTC days of expiry, plus index range counts over the two partial days at the edges
        of each window (today before/after now, and the window's last day), so they stay exact at any
        instant while reading about a day's worth of index entries, however large the inventory. Agents are
        few and their activity is time-based: they are still counted directly.
        """
        today, last_day = _utc_day(now), _utc_day(expiring_before)
        tomorrow = _midnight(today + timedelta(days=1))
        params = {
            "now": now,
            "today": today,
            "today_start": _midnight(today),
            "first_day_end": min(tomorrow, expiring_before),
            "last_day": last_day,
            "last_day_start": max(_midnight(last_day), tomorrow),  # past expiring_before when it is today
            "expiring_before": expiring_before,
            "heartbeat_after": heartbeat_after,
        }
        # Core, on the session's connection: the statement is built and compiled once per process.
        total, expiring, expired, revoked, agents, active, pending, failed, completed, unfolded, dead = (
            int(value or 0) for value in self.session.connection().execute(_summary_statement(), params).one()
        )
        return SummaryCounts(
            total_certificates=total,
            expiring_certificates=expiring,
            expired_certificates=expired,
            revoked_certificates=revoked,
            total_agents=agents,
            active_agents=active,
            pending_jobs=pending,
            failed_jobs=failed,
            complete_jobs=completed,
            unfolded_counts=unfolded,
            notifications_dead=dead,
        )

    def fold_counts(self) -> int:
        """Add the rows written since the last fold into one row per key; returns the rows folded.

        Only the waiting rows and the keys they touch are rewritten, so a fold costs what changed, not what
        is counted. Rows committed by writers meanwhile are not seen: they stay and keep counting. On
        PostgreSQL one replica folds at a time (the others skip, returning 0) instead of queueing.
        """
        sc = StatusCountRow
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        if postgresql and not self.session.scalar(select(func.pg_try_advisory_xact_lock(FOLD_LOCK_ID))):
            return 0
        waiting = self.session.execute(
            delete(sc).where(sc.folded.is_(False)).returning(sc.table_name, sc.state, sc.expires_on, sc.delta)
        ).all()
        sums: dict[tuple[str, str, date | None], int] = defaultdict(int)
        for table_name, state, expires_on, delta in waiting:
            sums[(table_name, state, expires_on)] += delta
        folded = {
            (table_name, state, expires_on): (ident, delta)
            for ident, table_name, state, expires_on, delta in self.session.execute(
                select(sc.id, sc.table_name, sc.state, sc.expires_on, sc.delta).where(sc.folded.is_(True))
            )
        }
        changed, emptied, added = [], [], []
        for key, delta in sums.items():
            if key in folded:
                ident, total = folded[key]
                if total + delta:
                    changed.append({"row_id": ident, "new_delta": total + delta})
                else:
                    emptied.append(ident)
            elif delta:
                table_name, state, expires_on = key
                added.append(
                    {"table_name": table_name, "state": state, "expires_on": expires_on, "delta": delta, "folded": True}
                )
        if changed:
            self.session.connection().execute(
                update(sc).where(sc.id == bindparam("row_id")).values(delta=bindparam("new_delta")), changed
            )
        if emptied:
            self.session.execute(delete(sc).where(sc.id.in_(emptied)))
        if added:
            self.session.execute(insert(sc), added)
        return len(waiting)

    def kept_certificate_count(self, status: CertificateStatus | None = None) -> int:
        """How many certificates there are (in `status`), from the counts kept on write: no row is counted."""
        where = [StatusCountRow.table_name == ManagedCertificate.__tablename__]
        if status is not None:
            where.append(StatusCountRow.state == status.value)
        return int(self.session.scalar(select(_sum(*where))) or 0)

    def certificate_status_counts(self) -> Sequence[tuple[str, int]]:
        """(status as stored, count) for every stored status value; index-only on the status index."""
        stored = type_coerce(ManagedCertificate.status, String())
        stmt = select(stored, func.count()).group_by(stored)
        return [(str(status), int(count)) for status, count in self.session.execute(stmt)]

    def expiry_split(self, statuses: Collection[str], now: datetime, expiring_before: datetime) -> tuple[int, int]:
        """(expired, expiring) among certificates stored with one of `statuses`.

        Expired: expires_at < now; expiring: now ≤ expires_at < expiring_before. Rows without an expiry
        are in neither.
        """
        cert = ManagedCertificate
        stmt = select(
            func.count().filter(cert.expires_at < now),
            func.count().filter(cert.expires_at >= now),
        ).where(type_coerce(cert.status, String()).in_(list(statuses)), cert.expires_at < expiring_before)
        expired, expiring = self.session.execute(stmt).one()
        return int(expired or 0), int(expiring or 0)

    def expirations_by_day(self, after: datetime, before: datetime) -> dict[str, int]:
        """Certificates expiring in the open interval (after, before), by UTC day `YYYY-MM-DD`."""
        cert = ManagedCertificate
        days = (
            select(self._utc_day(cert.expires_at).label("day"))
            .where(cert.expires_at > after, cert.expires_at < before)
            .subquery("days")
        )
        stmt = select(days.c.day, func.count()).group_by(days.c.day)
        return {str(day): int(count) for day, count in self.session.execute(stmt)}

    def job_outcomes_by_day(self, since: datetime, before: datetime) -> dict[str, tuple[int, int]]:
        """(completed, terminally failed) jobs by UTC day of completed_at, for since ≤ completed_at < before.

        A failed attempt that will be retried (next_retry_at set) is not an outcome yet, so it is not counted.
        """
        job = Job
        outcomes = (
            select(self._utc_day(job.completed_at).label("day"), job.status.label("status"))
            .where(
                job.completed_at >= since,
                job.completed_at < before,
                or_(
                    job.status == JobStatus.COMPLETED,
                    and_(job.status == JobStatus.FAILED, job.next_retry_at.is_(None)),
                ),
            )
            .subquery("outcomes")
        )
        stmt = select(
            outcomes.c.day,
            func.count().filter(outcomes.c.status == JobStatus.COMPLETED),
            func.count().filter(outcomes.c.status == JobStatus.FAILED),
        ).group_by(outcomes.c.day)
        return {str(day): (int(completed), int(failed)) for day, completed, failed in self.session.execute(stmt)}

    def certificates_created_by_day(self, since: datetime, before: datetime) -> dict[str, int]:
        """Certificates by UTC day of created_at, for since ≤ created_at < before."""
        cert = ManagedCertificate
        days = (
            select(self._utc_day(cert.created_at).label("day"))
            .where(cert.created_at >= since, cert.created_at < before)
            .subquery("days")
        )
        stmt = select(days.c.day, func.count()).group_by(days.c.day)
        return {str(day): int(count) for day, count in self.session.execute(stmt)}

    def certificate_expiries(self) -> Sequence[CertificateExpiry]:
        """Every certificate with an expiry that is not archived, by id (one row each: opt-in metric only)."""
        cert = ManagedCertificate
        stmt = (
            select(cert.id, cert.common_name, cert.expires_at)
            .where(cert.expires_at.is_not(None), cert.status != CertificateStatus.ARCHIVED)
            .order_by(cert.id)
        )
        return [
            CertificateExpiry(certificate_id=ident, common_name=name, expires_at=expires_at)
            for ident, name, expires_at in self.session.execute(stmt)
            if expires_at is not None
        ]

    def _utc_day(self, column: QueryableAttribute[Any]) -> ColumnElement[Any]:
        """The UTC calendar day of an instant, computed by the database; `str()` of a result is YYYY-MM-DD."""
        if self.session.get_bind().dialect.name == "postgresql":
            # timestamptz → UTC wall time first: the session time zone must not move the day boundary.
            # A date is cheaper to compute and group than formatted text (about 1.5x at 100k rows).
            return cast(func.timezone("UTC", column), Date)
        # SQLite stores these columns as naive UTC text (db/types.py UTCDateTime); date() gives YYYY-MM-DD.
        return func.date(column)


@cache
def _summary_statement() -> Select[*tuple[Any, ...]]:
    """StatsStore.summary_counts' statement, with its instants and days as bound parameters."""
    cert, sc = ManagedCertificate, StatusCountRow
    undecided_row = cert.status.not_in(_DECIDED)
    certificates, jobs = sc.table_name == ManagedCertificate.__tablename__, sc.table_name == Job.__tablename__
    undecided = and_(certificates, sc.state.not_in(_DECIDED))
    not_retired = Agent.retired_at.is_(None)
    now: BindParameter[datetime] = bindparam("now")
    expiring_before: BindParameter[datetime] = bindparam("expiring_before")
    # Precedence as the original: revoked, then expired (by status or by date), then expiring.
    expired = (
        _sum(certificates, sc.state == CertificateStatus.EXPIRED.value)
        + _sum(undecided, sc.expires_on < bindparam("today"))
        + _count(cert, undecided_row, cert.expires_at >= bindparam("today_start"), cert.expires_at < now)
    )
    expiring = (
        _count(cert, undecided_row, cert.expires_at > now, cert.expires_at < bindparam("first_day_end"))
        + _sum(undecided, sc.expires_on > bindparam("today"), sc.expires_on < bindparam("last_day"))
        + _count(cert, undecided_row, cert.expires_at >= bindparam("last_day_start"), cert.expires_at < expiring_before)
    )
    return select(
        _sum(certificates),
        expiring,
        expired,
        _sum(certificates, sc.state == CertificateStatus.REVOKED.value),
        _count(Agent, not_retired),
        _count(Agent, not_retired, Agent.last_heartbeat_at > bindparam("heartbeat_after")),
        _sum(jobs, sc.state.in_(_PENDING_JOB_STATES)),
        _sum(jobs, sc.state == JobStatus.FAILED.value),  # terminal: a retrying one is counted as pending
        _sum(jobs, sc.state == JobStatus.COMPLETED.value),
        func.count().filter(sc.folded.is_(False)),
        # The dead-letter queue: an index count on the status index, small however many rows were sent.
        _count(NotificationEvent, NotificationEvent.status == NotificationStatus.DEAD.value),
    ).select_from(sc)


def _count(entity: type[Any], *where: ColumnElement[bool]) -> ScalarSelect[int]:
    return select(func.count()).select_from(entity).where(*where).scalar_subquery()


def _sum(*where: ColumnElement[bool]) -> ColumnElement[int]:
    """Rows counted in status_counts under the keys matching `where` (0 when none)."""
    return func.coalesce(func.sum(StatusCountRow.delta).filter(and_(*where)), 0)


def _utc_day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
