"""The renewal check and short-lived expiry loops (core.md §3.1, §7.1, §7.2).

Both walk every matching certificate in batches, one transaction per batch, soonest expiry first, and
stop between batches when their deadline runs out (reported as `finished=False`, never silent). Both are
safe to run from two processes at once: every row is re-read under a row lock before it changes, and a
renewal job refused by the one-open-job index counts as "already renewing".

Audit actions: `certificate_expiring`, `certificate_expired`, `short_lived_cert_expired`, and
`renewal_job_created` (written by `start_issuance`), all by the system actor.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from certctl.audit.service import AuditRecorder
from certctl.certificates.issuance import start_issuance
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.certificates.renewal_window import (
    CHECKED_STATUSES,
    Hold,
    RenewalDecision,
    RenewalTrigger,
    RenewalWindow,
    decide,
    renewal_trigger,
)
from certctl.certificates.store import BATCH_SIZE, OPEN_JOB_STATUSES
from certctl.clock import Clock
from certctl.config import KeygenMode
from certctl.db.engine import Database
from certctl.db.types import UTCDateTime
from certctl.errors import Conflict
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile
from certctl.profiles.rules import SHORT_LIVED_TTL_SECONDS
from certctl.scheduler.deadline import Deadline
from certctl.security.roles import SYSTEM_ACTOR

log = logging.getLogger("certctl.renewal")

RESOURCE_TYPE = "certificate"
SHORT_LIVED_EXPIRABLE_STATUSES = (CertificateStatus.ACTIVE, CertificateStatus.EXPIRING)
# §7.2: candidates expire within their policy's largest horizon "plus one day".
HORIZON_SLACK = timedelta(days=1)
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class ExpiryCheck:
    """One certificate as the checker left it, for threshold expiry alerts (notifications.md §9)."""

    certificate_id: str
    renewal_policy_id: str
    status: CertificateStatus  # after this run's Expiring/Expired transition
    expires_at: datetime
    checked_at: datetime
    alert_thresholds_days: tuple[int, ...]
    renewal_job_id: str | None  # the job this run created, if any

    @property
    def days_left(self) -> float:
        """`(expires_at - checked_at)` in days, as the original; thresholds truncate it toward zero."""
        return (self.expires_at - self.checked_at) / timedelta(days=1)


# Extension point for the notifications feature: called in the batch's transaction for every certificate
# the checker looked at (RenewalInProgress ones are not looked at), so alert rows commit or roll back with
# the status change they describe (STYLE.md §5.4). The checker itself sends nothing.
ExpiryAlertHook = Callable[[Session, ExpiryCheck], None]


@dataclass(frozen=True, slots=True)
class RenewalSummary:
    """What one renewal check did. `finished` is False when the deadline stopped it with rows left."""

    scanned: int = 0  # candidates looked at (expiring within their policy's horizon)
    marked_expiring: int = 0
    marked_expired: int = 0
    jobs_created: int = 0
    awaiting_approval: int = 0  # of jobs_created: waiting for approval (profile requires_approval)
    skipped_auto_renew_off: int = 0  # in the window, policy auto_renew=false
    skipped_failed: int = 0  # in the window but Failed: an operator must act
    skipped_no_connector: int = 0
    skipped_open_job: int = 0  # already renewing: an open job found, or the unique index refused ours
    skipped_changed: int = 0  # renewed or re-issued by someone else between read and lock
    batches: int = 0
    finished: bool = True


@dataclass(frozen=True, slots=True)
class ShortLivedSweep:
    """What one short-lived expiry pass did. `finished` is False when the deadline stopped it."""

    expired: int = 0
    batches: int = 0
    finished: bool = True


@dataclass(frozen=True, slots=True)
class _Policy:
    id: str
    window: RenewalWindow
    auto_renew: bool
    alert_thresholds_days: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A decision and the row state it was made on; `changed` when the lock found that state gone."""

    status: CertificateStatus
    expires_at: datetime
    trigger: RenewalTrigger
    decision: RenewalDecision
    changed: bool = False


_HELD = {Hold.FAILED: "skipped_failed", Hold.AUTO_RENEW_OFF: "skipped_auto_renew_off"}


@dataclass
class _Run:
    now: datetime
    policies: Mapping[str, _Policy]
    cutoffs: Mapping[str, datetime]  # per policy: certificates expiring later cannot need anything now
    counts: Counter[str] = field(default_factory=Counter)
    connectors: dict[str, bool] = field(default_factory=dict)  # issuer id -> has a connector


class RenewalChecker:
    """The renewal check loop body (core.md §7.2, what we build; ARI windows arrive with the ACME issuer).

    Per certificate expiring within its policy's horizon: Active/Expiring/Failed past expiry → Expired
    (audit `certificate_expired`); Active inside the renewal window → Expiring (audit
    `certificate_expiring`); inside the window with auto_renew, a connector for its issuer and no open
    Issuance/Renewal job → `start_issuance` (trigger `window_days` or `window_percent`). Failed and Expired
    certificates are never renewed automatically, nor is a certificate in the run that finds it expired:
    renewing after an expiry is an operator's decision (manual or bulk renew). Pending certificates with
    an expiry (imports) may be renewed but change no status. A certificate without expiry is never looked at.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        keygen_mode: KeygenMode,
        has_connector: Callable[[str], bool],
        *,
        batch_size: int = BATCH_SIZE,
        on_expiry_check: ExpiryAlertHook | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._db, self._clock, self._keygen_mode = db, clock, keygen_mode
        self._has_connector = has_connector
        self._batch_size = batch_size
        self._on_expiry_check = on_expiry_check

    def run(self, deadline: Deadline | None = None) -> RenewalSummary:
        """Check every candidate once; each batch commits on its own."""
        deadline = deadline or Deadline.never()
        run = self._start(self._clock.now())
        if run is None:
            return RenewalSummary()
        after: tuple[datetime, str] | None = None
        finished = True
        batches = 0
        while True:
            if deadline.expired:
                finished = False
                break
            with self._db.begin() as session:
                certs = session.scalars(_candidates(run.cutoffs, after, self._batch_size)).all()
                if not certs:
                    break
                after = (_expiry(certs[-1]), certs[-1].id)
                batches += 1
                self._check_batch(session, run, certs)
        summary = RenewalSummary(batches=batches, finished=finished, **run.counts)
        log.info("renewal.check_finished", extra=asdict(summary))
        if not finished:
            log.warning("renewal.check_deadline", extra={"scanned": summary.scanned})
        return summary

    # -- per run ------------------------------------------------------------------------------------------

    def _start(self, now: datetime) -> _Run | None:
        """Policies once per run (as the original caches them), and each one's candidate horizon."""
        with self._db.begin() as session:
            policies = {row.id: _policy_view(row) for row in session.scalars(select(RenewalPolicy))}
            percent_ids = [p.id for p in policies.values() if p.window.percent is not None]
            leads = _percent_leads(session, percent_ids) if percent_ids else {}
        if not policies:
            return None
        return _Run(
            now=now, policies=policies, cutoffs={p.id: _cutoff(p, leads.get(p.id), now) for p in policies.values()}
        )

    # -- per batch ----------------------------------------------------------------------------------------

    def _check_batch(self, session: Session, run: _Run, certs: Sequence[ManagedCertificate]) -> None:
        percent_ids = [c.id for c in certs if run.policies[c.renewal_policy_id].window.percent is not None]
        validity = _latest_validity(session, percent_ids) if percent_ids else {}
        plans = {cert.id: self._plan(run, cert, validity.get(cert.id)) for cert in certs}
        acting = [cert.id for cert in certs if plans[cert.id].decision.acts]
        if acting:
            # Re-read under a row lock before changing anything: another checker, a manual renew or a
            # finished issuance may have moved the certificate since the batch was read. While the lock is
            # held nobody else can add a job for it either (the job's foreign key needs a share lock on the
            # row). Locked in id order, as bulk renew goes, so the two never deadlock. SQLite ignores FOR
            # UPDATE: its batch transaction already holds the database's write lock.
            session.execute(
                select(ManagedCertificate)
                .where(ManagedCertificate.id.in_(acting))
                .order_by(ManagedCertificate.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).all()
            for cert in certs:
                plans[cert.id] = self._recheck(run, cert, plans[cert.id])
        renewing = [cert.id for cert in certs if plans[cert.id].decision.renew]
        open_jobs = _with_open_issuance_job(session, renewing) if renewing else set()
        # `start_issuance` reads each certificate's policy and profile with `session.get`: loaded here in two
        # queries and held (the identity map keeps objects weakly), each is then found without a SELECT.
        held = _policies_and_profiles(session, [cert for cert in certs if plans[cert.id].decision.renew])
        counts_before = run.counts.copy()
        try:
            # Fast path: one savepoint for the batch. Under the lock no open job can appear unseen, so
            # `start_issuance` should never meet the one-open-job index here...
            with session.begin_nested():
                for cert in certs:
                    self._check_one(session, run, cert, plans[cert.id], open_jobs, careful=False)
        except (Conflict, IntegrityError):
            # ...and should it ever, the batch is redone with a savepoint per certificate, where a refused
            # job counts as "already renewing".
            log.warning("renewal.batch_conflict", extra={"first_id": certs[0].id, "size": len(certs)})
            run.counts = counts_before
            for cert in certs:
                self._check_one(session, run, cert, plans[cert.id], open_jobs, careful=True)
        del held

    def _plan(
        self,
        run: _Run,
        cert: ManagedCertificate,
        validity: tuple[datetime, datetime] | None,
        trigger: RenewalTrigger | None = None,
    ) -> _Plan:
        expires_at = _expiry(cert)
        policy = run.policies[cert.renewal_policy_id]
        if trigger is None:
            not_before, not_after = validity or (None, None)
            trigger = renewal_trigger(expires_at, policy.window, not_before, not_after)
        decision = decide(cert.status, expires_at, trigger.at, run.now, auto_renew=policy.auto_renew)
        return _Plan(cert.status, expires_at, trigger, decision)

    def _recheck(self, run: _Run, cert: ManagedCertificate, plan: _Plan) -> _Plan:
        """The plan for the row as the lock found it; nothing applies if it was renewed meanwhile."""
        if not plan.decision.acts or (cert.status, cert.expires_at) == (plan.status, plan.expires_at):
            return plan
        if cert.expires_at != plan.expires_at or cert.status not in CHECKED_STATUSES:
            return replace(plan, decision=RenewalDecision(), changed=True)
        return self._plan(run, cert, None, trigger=plan.trigger)

    def _check_one(
        self,
        session: Session,
        run: _Run,
        cert: ManagedCertificate,
        plan: _Plan,
        open_jobs: Collection[str],
        *,
        careful: bool,
    ) -> None:
        run.counts["scanned"] += 1
        if plan.changed:
            run.counts["skipped_changed"] += 1
            return
        new_status = plan.decision.new_status
        if new_status is not None:
            self._move(session, run, cert, plan, new_status)
        job_id = self._renew(session, run, cert, plan, open_jobs, careful=careful) if plan.decision.renew else None
        if plan.decision.hold is not None:
            run.counts[_HELD[plan.decision.hold]] += 1
        if self._on_expiry_check is not None:
            policy = run.policies[cert.renewal_policy_id]
            check = ExpiryCheck(
                certificate_id=cert.id,
                renewal_policy_id=policy.id,
                status=new_status or plan.status,
                expires_at=plan.expires_at,
                checked_at=run.now,
                alert_thresholds_days=policy.alert_thresholds_days,
                renewal_job_id=job_id,
            )
            self._on_expiry_check(session, check)

    def _move(
        self, session: Session, run: _Run, cert: ManagedCertificate, plan: _Plan, new_status: CertificateStatus
    ) -> None:
        """The Expiring or Expired transition, audited."""
        cert.status, cert.updated_at = new_status, run.now
        expired = new_status is CertificateStatus.EXPIRED
        details: dict[str, Any] = {"previous_status": plan.status.value, "expires_at": plan.expires_at.isoformat()}
        if not expired:
            details |= {"renewal_trigger": plan.trigger.reason.value, "trigger_at": plan.trigger.at.isoformat()}
        action = "certificate_expired" if expired else "certificate_expiring"
        AuditRecorder(session, self._clock).record(SYSTEM_ACTOR, action, RESOURCE_TYPE, cert.id, details)
        run.counts["marked_expired" if expired else "marked_expiring"] += 1

    def _renew(
        self,
        session: Session,
        run: _Run,
        cert: ManagedCertificate,
        plan: _Plan,
        open_jobs: Collection[str],
        *,
        careful: bool,
    ) -> str | None:
        """Start the renewal job unless the issuer has no connector or a job is open; the job's id."""
        if cert.issuer_id not in run.connectors:
            run.connectors[cert.issuer_id] = self._has_connector(cert.issuer_id)
        if not run.connectors[cert.issuer_id]:
            run.counts["skipped_no_connector"] += 1
            return None
        if cert.id in open_jobs:  # awaiting approval, or a manual renew got there first
            run.counts["skipped_open_job"] += 1
            return None
        if careful:
            try:
                with session.begin_nested():
                    job = self._start_renewal(session, cert, plan)
            except Conflict as exc:
                # The one-open-job index refused ours: already renewing. The savepoint drops the half-made
                # job and its audit row.
                log.info("renewal.already_renewing", extra={"certificate_id": cert.id, "reason": str(exc)})
                run.counts["skipped_open_job"] += 1
                return None
        else:
            # Nothing start_issuance reads depends on this batch's pending changes; without autoflush the
            # status change, the job and the audit rows reach the database in one flush.
            with session.no_autoflush:
                job = self._start_renewal(session, cert, plan, batched=True)
        run.counts["jobs_created"] += 1
        if job.status is JobStatus.AWAITING_APPROVAL:
            run.counts["awaiting_approval"] += 1
        return job.id

    def _start_renewal(self, session: Session, cert: ManagedCertificate, plan: _Plan, *, batched: bool = False) -> Job:
        # Batched (fast path): open jobs were read under the batch's lock, and the rows are flushed together
        # when the batch's savepoint ends.
        return start_issuance(
            session,
            cert,
            actor=SYSTEM_ACTOR,
            clock=self._clock,
            keygen_mode=self._keygen_mode,
            trigger=plan.trigger.reason.value,
            known_without_open_job=batched,
            flush=not batched,
        )


def expire_short_lived(
    db: Database, clock: Clock, deadline: Deadline | None = None, *, batch_size: int = BATCH_SIZE
) -> ShortLivedSweep:
    """Active/Expiring certificates of a short-lived profile (allow_short_lived and 0 < max_ttl_seconds <
    3600, core.md §2.9) whose expires_at has passed → Expired, audit `short_lived_cert_expired`.

    One transaction per batch; rows are locked before they change, so two processes never expire (or
    audit) a certificate twice.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    deadline = deadline or Deadline.never()
    now = clock.now()
    m = ManagedCertificate
    due = (
        select(m.id, m.status, m.expires_at)
        .join(CertificateProfile, CertificateProfile.id == m.certificate_profile_id)
        .where(
            CertificateProfile.allow_short_lived.is_(True),
            CertificateProfile.max_ttl_seconds > 0,
            CertificateProfile.max_ttl_seconds < SHORT_LIVED_TTL_SECONDS,
            m.status.in_(SHORT_LIVED_EXPIRABLE_STATUSES),
            m.expires_at.is_not(None),
            m.expires_at <= now,
        )
        .order_by(m.expires_at, m.id)
        .limit(batch_size)
        # PostgreSQL re-checks the conditions after waiting for a lock, so a row another process just
        # expired drops out here; SQLite's batch transaction already holds the write lock.
        .with_for_update(of=m)
    )
    expired = batches = 0
    while True:
        if deadline.expired:
            log.warning("renewal.short_lived_deadline", extra={"expired": expired})
            return ShortLivedSweep(expired=expired, batches=batches, finished=False)
        with db.begin() as session:
            rows = session.execute(due).all()
            if not rows:
                break
            batches += 1
            session.execute(
                update(m)
                .where(m.id.in_([row.id for row in rows]))
                .values(status=CertificateStatus.EXPIRED, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            audit = AuditRecorder(session, clock)
            for row in rows:
                audit.record(
                    SYSTEM_ACTOR,
                    "short_lived_cert_expired",
                    RESOURCE_TYPE,
                    row.id,
                    {"previous_status": row.status.value, "expires_at": row.expires_at.isoformat()},
                )
            expired += len(rows)
    if expired:
        log.info("renewal.short_lived_expired", extra={"expired": expired, "batches": batches})
    return ShortLivedSweep(expired=expired, batches=batches, finished=True)


# -- queries ------------------------------------------------------------------------------------------------


def _policy_view(row: RenewalPolicy) -> _Policy:
    try:
        window = RenewalWindow(row.renewal_window_days, row.renewal_window_percent)
    except ValueError as exc:
        # A row written around the API's validation must not stop the check for everyone else.
        log.error("renewal.policy_invalid", extra={"policy_id": row.id, "error": str(exc)})
        window = RenewalWindow(max(row.renewal_window_days, 0))
    thresholds = tuple(day for day in row.alert_thresholds_days or () if isinstance(day, int))
    return _Policy(row.id, window, row.auto_renew, thresholds)


def _cutoff(policy: _Policy, percent_lead_seconds: float | None, now: datetime) -> datetime:
    """The latest expiry that can matter now: the policy's widest window or alert threshold, plus slack."""
    lead_days = max(policy.window.days, max(policy.alert_thresholds_days, default=0))
    lead_seconds = max(lead_days * _SECONDS_PER_DAY, percent_lead_seconds or 0.0)
    return now + timedelta(seconds=math.ceil(lead_seconds)) + HORIZON_SLACK


def _expiry(cert: ManagedCertificate) -> datetime:
    if cert.expires_at is None:  # excluded by the query; a guard for the type checker
        raise ValueError(f"certificate {cert.id} has no expiry")
    return cert.expires_at


def _candidates(cutoffs: Mapping[str, datetime], after: tuple[datetime, str] | None, limit: int) -> Select[Any]:
    """The next batch of candidates in (expires_at, id) order, the order of `ix_managed_certificates_expires_at_id`."""
    m = ManagedCertificate
    by_cutoff: dict[datetime, list[str]] = {}
    for policy_id, cutoff in cutoffs.items():
        by_cutoff.setdefault(cutoff, []).append(policy_id)
    stmt = select(m).where(
        m.status.in_(CHECKED_STATUSES),
        m.expires_at.is_not(None),
        # The overall bound lets the planner range-scan the expiry index; the per-policy bounds refine it.
        m.expires_at <= max(cutoffs.values()),
        or_(*(and_(m.renewal_policy_id.in_(ids), m.expires_at <= cutoff) for cutoff, ids in by_cutoff.items())),
    )
    if after is not None:
        stmt = stmt.where(tuple_(m.expires_at, m.id) > tuple_(literal(after[0], UTCDateTime()), literal(after[1])))
    return stmt.order_by(m.expires_at, m.id).limit(limit)


def _latest_version_only() -> ColumnElement[bool]:
    """No newer version of the same certificate exists (newest by created_at, then id, as CertificateStore)."""
    v, newer = CertificateVersion, aliased(CertificateVersion)
    return ~exists().where(
        newer.certificate_id == v.certificate_id,
        or_(newer.created_at > v.created_at, and_(newer.created_at == v.created_at, newer.id > v.id)),
    )


def _latest_validity(session: Session, certificate_ids: Collection[str]) -> dict[str, tuple[datetime, datetime]]:
    """(not_before, not_after) of each certificate's current version, in one query."""
    v = CertificateVersion
    rows = session.execute(
        select(v.certificate_id, v.not_before, v.not_after).where(
            v.certificate_id.in_(certificate_ids), _latest_version_only()
        )
    )
    return {cert_id: (not_before, not_after) for cert_id, not_before, not_after in rows}


def _percent_leads(session: Session, policy_ids: Collection[str]) -> dict[str, float]:
    """Per percent-window policy, the most seconds before expiry its percent window can open on any of
    its candidates' current versions: `max(expires_at - (not_after - p% * lifetime))`.
    """
    m, v, rp = ManagedCertificate, CertificateVersion, RenewalPolicy
    dialect = session.get_bind().dialect.name
    lifetime = _seconds_between(v.not_after, v.not_before, dialect)
    lead = _seconds_between(m.expires_at, v.not_after, dialect) + lifetime * rp.renewal_window_percent / 100.0
    rows = session.execute(
        select(m.renewal_policy_id, func.max(lead))
        .join(v, v.certificate_id == m.id)
        .join(rp, rp.id == m.renewal_policy_id)
        .where(
            m.renewal_policy_id.in_(policy_ids),
            m.status.in_(CHECKED_STATUSES),
            m.expires_at.is_not(None),
            _latest_version_only(),
        )
        .group_by(m.renewal_policy_id)
    )
    return {policy_id: float(seconds) for policy_id, seconds in rows if seconds is not None}


def _seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    """`later - earlier` in seconds, as SQL (date arithmetic differs by database)."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" text, which julianday() reads.
    return (func.julianday(later) - func.julianday(earlier)) * float(_SECONDS_PER_DAY)


def _policies_and_profiles(
    session: Session, certs: Sequence[ManagedCertificate]
) -> list[RenewalPolicy | CertificateProfile]:
    policy_ids = {cert.renewal_policy_id for cert in certs}
    profile_ids = {cert.certificate_profile_id for cert in certs if cert.certificate_profile_id}
    held: list[RenewalPolicy | CertificateProfile] = []
    if policy_ids:
        held += session.scalars(select(RenewalPolicy).where(RenewalPolicy.id.in_(policy_ids)))
    if profile_ids:
        held += session.scalars(select(CertificateProfile).where(CertificateProfile.id.in_(profile_ids)))
    return held


def _with_open_issuance_job(session: Session, certificate_ids: Collection[str]) -> set[str]:
    """Which of these certificates have an open Issuance/Renewal job (the unique index's rule)."""
    rows = session.scalars(
        select(Job.certificate_id).where(
            Job.certificate_id.in_(certificate_ids),
            Job.type.in_((JobType.ISSUANCE, JobType.RENEWAL)),
            Job.status.in_(OPEN_JOB_STATUSES),
        )
    )
    return {cert_id for cert_id in rows if cert_id is not None}
