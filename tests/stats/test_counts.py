"""Counts kept on write (status_counts, revision 0004) always equal a real COUNT over the rows.

Every write path is exercised: ORM inserts and updates, bulk INSERT/UPDATE/DELETE statements, raw SQL,
cascading deletes, folding in between, and on PostgreSQL several writers and folders at once. The summary
is checked against the COUNT(*) statement it replaced, at instants on and around UTC day boundaries.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from certctl.agents.models import Agent
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.org.models import Owner, Team
from certctl.stats.models import JOB_RETRYING_STATE, StatusCountRow
from certctl.stats.service import ACTIVE_AGENT_WINDOW, EXPIRING_WINDOW, StatsService
from certctl.stats.store import OPEN_JOB_STATUSES, StatsStore
from tests.stats.conftest import CERT_DEFAULTS, add_certificates, add_heartbeating_agent, add_jobs

DAY = timedelta(days=1)
Key = tuple[str, str, date | None]


def kept_counts(context: AppContext) -> Counter[Key]:
    """What status_counts says, per key (keys summing to zero left out)."""
    sc = StatusCountRow
    with context.db.read() as session:
        rows = session.execute(
            select(sc.table_name, sc.state, sc.expires_on, func.sum(sc.delta)).group_by(
                sc.table_name, sc.state, sc.expires_on
            )
        ).all()
    return Counter({(table, state, day): int(total) for table, state, day, total in rows if total})


def true_counts(context: AppContext) -> Counter[Key]:
    """The same keys computed from the rows themselves."""
    counts: Counter[Key] = Counter()
    with context.db.read() as session:
        for status, expires_at in session.execute(select(ManagedCertificate.status, ManagedCertificate.expires_at)):
            day = expires_at.astimezone(UTC).date() if expires_at is not None else None
            counts["managed_certificates", status.value, day] += 1
        for status, next_retry_at in session.execute(select(Job.status, Job.next_retry_at)):
            retrying = status is JobStatus.FAILED and next_retry_at is not None
            counts["jobs", JOB_RETRYING_STATE if retrying else status.value, None] += 1
    return counts


def counted_summary(context: AppContext, now: datetime) -> tuple[int, ...]:
    """The summary statement as it was before status_counts: one COUNT(*) per figure, over every row."""
    cert, job = ManagedCertificate, Job
    undecided = cert.status.not_in((CertificateStatus.REVOKED, CertificateStatus.EXPIRED))
    soon = now + EXPIRING_WINDOW

    def count(entity: type[Any], *where: Any) -> Any:
        return select(func.count()).select_from(entity).where(*where).scalar_subquery()

    stmt = select(
        count(cert),
        count(cert, undecided, cert.expires_at > now, cert.expires_at < soon),
        count(cert, cert.status == CertificateStatus.EXPIRED) + count(cert, undecided, cert.expires_at < now),
        count(cert, cert.status == CertificateStatus.REVOKED),
        count(Agent, Agent.retired_at.is_(None)),
        count(Agent, Agent.retired_at.is_(None), Agent.last_heartbeat_at > now - ACTIVE_AGENT_WINDOW),
        count(job, job.status.in_(OPEN_JOB_STATUSES))
        + count(job, job.status == JobStatus.FAILED, job.next_retry_at.is_not(None)),
        count(job, job.status == JobStatus.FAILED, job.next_retry_at.is_(None)),
        count(job, job.status == JobStatus.COMPLETED),
    )
    with context.db.read() as session:
        return tuple(int(value) for value in session.execute(stmt).one())


def kept_summary(context: AppContext, now: datetime) -> tuple[int, ...]:
    with context.db.read() as session:
        c = StatsStore(session).summary_counts(now, now + EXPIRING_WINDOW, now - ACTIVE_AGENT_WINDOW)
    return (
        c.total_certificates,
        c.expiring_certificates,
        c.expired_certificates,
        c.revoked_certificates,
        c.total_agents,
        c.active_agents,
        c.pending_jobs,
        c.failed_jobs,
        c.complete_jobs,
    )


def assert_exact(context: AppContext) -> None:
    assert kept_counts(context) == true_counts(context)


def fold(context: AppContext) -> int:
    return StatsService(context.db, context.clock, started_at=context.clock.now()).fold_counts()


def mixed_inventory(context: AppContext, now: datetime) -> str:
    """Certificates in every state with expiries spread over a year either side, jobs in every state."""
    offsets = [timedelta(days=d, hours=h) for d in (-200, -31, -1, 0, 1, 15, 29, 30, 31, 90, 365) for h in (0, 7, 23)]
    for n, offset in enumerate(offsets):
        add_certificates(context, 3, prefix=f"mc-active-{n}", expires_at=now + offset)
        add_certificates(
            context, 1, prefix=f"mc-renewing-{n}", status=CertificateStatus.RENEWAL_IN_PROGRESS, expires_at=now + offset
        )
    add_certificates(context, 4, prefix="mc-expired", status=CertificateStatus.EXPIRED, expires_at=now - 3 * DAY)
    add_certificates(context, 5, prefix="mc-revoked", status=CertificateStatus.REVOKED, expires_at=now + 10 * DAY)
    add_certificates(context, 6, prefix="mc-pending", status=CertificateStatus.PENDING)
    add_certificates(context, 2, prefix="mc-archived", status=CertificateStatus.ARCHIVED, expires_at=now - DAY)
    cert = "mc-active-0-0"
    for status in JobStatus:
        add_jobs(context, cert, 3, prefix=f"job-{status.value}", status=status)
    add_jobs(context, cert, 4, prefix="job-retrying", status=JobStatus.FAILED, next_retry_at=now + DAY)
    return cert


def test_a_new_database_counts_nothing(ctx: AppContext) -> None:
    assert kept_counts(ctx) == Counter()
    assert kept_summary(ctx, ctx.clock.now()) == (0,) * 9


def test_every_write_path_keeps_the_counts_exact(ctx: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    cert = mixed_inventory(ctx, now)
    assert_exact(ctx)

    # ORM: an insert, then the status and expiry changes issuance makes.
    with ctx.db.begin() as session:
        session.add(
            ManagedCertificate(
                **CERT_DEFAULTS,
                id="mc-orm",
                name="mc-orm",
                common_name="orm.example.com",
                created_at=now,
                updated_at=now,
            )
        )
    with ctx.db.begin() as session:
        row = session.get(ManagedCertificate, "mc-orm")
        assert row is not None
        row.status, row.expires_at = CertificateStatus.ACTIVE, now + 90 * DAY
    with ctx.db.begin() as session:  # an update that moves no key
        row = session.get(ManagedCertificate, "mc-orm")
        assert row is not None
        row.updated_at, row.common_name = now + DAY, "renamed.example.com"
    assert_exact(ctx)

    # Bulk statements: one UPDATE moves many rows between keys; DELETE removes several keys at once.
    with ctx.db.begin() as session:
        session.execute(
            update(ManagedCertificate)
            .where(ManagedCertificate.expires_at < now, ManagedCertificate.status == CertificateStatus.ACTIVE)
            .values(status=CertificateStatus.EXPIRED)
        )
        session.execute(
            update(ManagedCertificate)
            .where(ManagedCertificate.id.like("mc-renewing-%"))
            .values(expires_at=now + timedelta(days=45, hours=20))
        )
        session.execute(
            update(Job).where(Job.status == JobStatus.PENDING).values(status=JobStatus.RUNNING, claimed_by="w1")
        )
        session.execute(
            update(Job).where(Job.id.like("job-retrying-%")).values(next_retry_at=None)  # retries used up
        )
    assert_exact(ctx)
    assert fold(ctx) > 0
    assert_exact(ctx)

    # Raw SQL, a rolled-back transaction, deletes and a cascade (team → certificates → jobs).
    with ctx.db.begin() as session:
        session.execute(text("UPDATE jobs SET status = 'Completed' WHERE status = 'Running'"))
        session.execute(text("UPDATE managed_certificates SET status = 'Revoked' WHERE id LIKE 'mc-active-1%'"))
        session.execute(delete(ManagedCertificate).where(ManagedCertificate.id.like("mc-pending-%")))
        session.execute(text("DELETE FROM jobs WHERE status = 'Cancelled'"))

    def delete_then_fail() -> None:
        with ctx.db.begin() as session:
            session.execute(text("DELETE FROM jobs"))
            raise RuntimeError("rolled back: the counts must not move either")

    with pytest.raises(RuntimeError):
        delete_then_fail()
    assert_exact(ctx)
    with ctx.db.begin() as session:
        session.add(Team(id="t-gone", name="gone", created_at=now, updated_at=now))
        session.flush()
        session.add(Owner(id="o-gone", name="Gone", team_id="t-gone", created_at=now, updated_at=now))
    add_certificates(ctx, 3, prefix="mc-team-gone", expires_at=now + 5 * DAY)
    with ctx.db.begin() as session:
        session.execute(update(ManagedCertificate).where(ManagedCertificate.id.like("mc-team-gone-%")).values(
            team_id="t-gone", owner_id="o-gone"))  # fmt: skip
    add_jobs(ctx, "mc-team-gone-0", 2, prefix="job-team-gone", status=JobStatus.AWAITING_CSR)
    assert_exact(ctx)
    with ctx.db.begin() as session:
        session.execute(delete(ManagedCertificate).where(ManagedCertificate.team_id == "t-gone"))
        session.execute(delete(Owner).where(Owner.id == "o-gone"))
        session.execute(delete(Team).where(Team.id == "t-gone"))
        session.execute(delete(Job).where(Job.certificate_id == cert))
    assert_exact(ctx)
    fold(ctx)
    fold(ctx)  # folding twice changes nothing
    assert_exact(ctx)


def test_jobs_removed_by_a_cascade_from_their_certificate_are_uncounted(ctx: AppContext, clock: FrozenClock) -> None:
    now = clock.now()
    (cert,) = add_certificates(ctx, 1, prefix="mc-cascade", expires_at=now + 3 * DAY)
    add_jobs(ctx, cert, 2, prefix="job-cascade", status=JobStatus.PENDING)
    assert_exact(ctx)
    with ctx.db.begin() as session:
        session.execute(delete(ManagedCertificate))  # jobs go too: ON DELETE CASCADE
    assert true_counts(ctx) == Counter()
    assert kept_counts(ctx) == Counter()


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 1, 1, tzinfo=UTC),  # exactly midnight
        datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 7, 0, tzinfo=UTC),  # the hour some certificates expire at
        datetime(2026, 1, 1, 12, 30, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
    ],
)
def test_the_summary_equals_the_counted_summary_at_any_instant(
    ctx: AppContext, clock: FrozenClock, at: datetime
) -> None:
    now = clock.now()
    mixed_inventory(ctx, now)
    add_heartbeating_agent(ctx, "ag-1", now)
    add_heartbeating_agent(ctx, "ag-2", now - 10 * timedelta(minutes=1))
    add_certificates(ctx, 2, prefix="mc-edge-now", expires_at=at)
    add_certificates(ctx, 2, prefix="mc-edge-window", expires_at=at + EXPIRING_WINDOW)
    add_certificates(
        ctx, 2, prefix="mc-edge-midnight", expires_at=datetime.combine(at.date(), datetime.min.time(), UTC)
    )
    fold(ctx)
    add_certificates(ctx, 1, prefix="mc-after-fold", expires_at=at + timedelta(seconds=1))
    for instant in (at, at - timedelta(microseconds=1), at + timedelta(microseconds=1), at + DAY, at - 40 * DAY):
        assert kept_summary(ctx, instant) == counted_summary(ctx, instant), instant


def test_the_summary_folds_once_many_changes_are_waiting(
    ctx: AppContext, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("certctl.stats.service.FOLD_AFTER_ROWS", 10)
    now = clock.now()
    for n in range(12):
        add_certificates(ctx, 1, prefix=f"mc-one-by-one-{n}", expires_at=now + DAY)
    service = StatsService(ctx.db, clock, started_at=now)
    assert service.summary().total_certificates == 12
    with ctx.db.read() as session:
        rows = session.execute(select(StatusCountRow.folded, StatusCountRow.delta)).all()
    assert rows == [(True, 12)]
    assert service.summary().total_certificates == 12


def test_concurrent_writers_and_folders_neither_wait_on_each_other_nor_lose_a_count(
    ctx: AppContext, clock: FrozenClock
) -> None:
    """Several threads move jobs between statuses in batches (as worker processes do) while others fold."""
    if ctx.db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises writers with BEGIN IMMEDIATE")
    now = clock.now()
    certs = add_certificates(ctx, 20, prefix="mc-busy", expires_at=now + 60 * DAY)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for round_ in range(15):
                rows = [
                    {
                        "id": f"job-{n}-{round_}-{i}",
                        "type": JobType.DEPLOYMENT,
                        "certificate_id": certs[(n + i) % len(certs)],
                        "status": JobStatus.PENDING,
                        "scheduled_at": now,
                        "created_at": now,
                    }
                    for i in range(10)
                ]
                with ctx.db.begin() as session:
                    session.execute(insert(Job), rows)
                with ctx.db.begin() as session:  # claim a batch of anyone's pending jobs, as the queue does
                    picked = (
                        select(Job.id)
                        .where(Job.status == JobStatus.PENDING)
                        .limit(7)
                        .with_for_update(skip_locked=True)
                        .scalar_subquery()
                    )
                    session.execute(update(Job).where(Job.id.in_(picked)).values(status=JobStatus.RUNNING))
                with ctx.db.begin() as session:
                    session.execute(
                        update(Job)
                        .where(Job.status == JobStatus.RUNNING, Job.id.like(f"job-{n}-%"))
                        .values(status=JobStatus.COMPLETED)
                    )
                with ctx.db.begin() as session:
                    session.execute(update(ManagedCertificate).where(ManagedCertificate.id == certs[n]).values(
                        expires_at=now + (round_ + 1) * DAY))  # fmt: skip
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def folder() -> None:
        try:
            barrier.wait()
            for _ in range(30):
                fold(ctx)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=folder) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert_exact(ctx)
    fold(ctx)
    assert_exact(ctx)
    assert kept_summary(ctx, now) == counted_summary(ctx, now)


def test_truncating_a_counted_table_on_postgresql_drops_its_counts(ctx: AppContext, clock: FrozenClock) -> None:
    if ctx.db.dialect != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    (cert,) = add_certificates(ctx, 1, prefix="mc-truncate", expires_at=clock.now() + DAY)
    add_jobs(ctx, cert, 3, prefix="job-truncate", status=JobStatus.COMPLETED)
    with ctx.db.begin() as session:
        session.execute(text("TRUNCATE jobs"))
    assert_exact(ctx)
    with ctx.db.begin() as session:
        session.execute(text("TRUNCATE managed_certificates CASCADE"))
    assert_exact(ctx)
    assert kept_counts(ctx) == Counter()
