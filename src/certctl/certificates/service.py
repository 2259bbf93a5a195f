"""Managed certificates: inventory rules, target mappings, the lifecycle's manual entry points."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certctl.agents.deployments import queue_deployments
from certctl.audit.service import AuditRecorder, audit_row
from certctl.certificates import listing
from certctl.certificates.creation import BatchReferences, NewRows, check_new_certificate
from certctl.certificates.export import PemExport, pkcs12_bundle, split_pem
from certctl.certificates.imports import parse_certificate_pem
from certctl.certificates.issuance import first_job_status, job_created_details, max_attempts_for, start_issuance
from certctl.certificates.listing import CertificateFilter, Position, Sort
from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.certificates.names import check_common_name, check_san
from certctl.certificates.store import CertificateStore
from certctl.clock import Clock
from certctl.config import KeygenMode
from certctl.db.engine import Database
from certctl.db.group_commit import GroupCommit
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, CertctlError, Conflict, NotFound, ValidationFailed
from certctl.ids import new_id
from certctl.issuers.models import Issuer
from certctl.jobs.models import Job, JobStatus, JobType
from certctl.jobs.store import JobStore
from certctl.org.models import Owner, Team
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile
from certctl.security.roles import Actor
from certctl.stats.store import StatsStore
from certctl.targets.models import DeploymentTarget

log = logging.getLogger("certctl.certificates")
CERTIFICATE_COLUMNS = tuple(ManagedCertificate.__table__.columns)
MAX_CREATE_BATCH = 100  # creates per transaction at most: each table then gets one INSERT statement


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    name: str
    common_name: str
    owner_id: str
    team_id: str
    issuer_id: str
    renewal_policy_id: str
    sans: Sequence[str] = ()
    environment: str = ""
    certificate_profile_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    target_ids: Sequence[str] = ()
    status: CertificateStatus | None = None
    certificate_pem: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateView:
    """A certificate with its mapped target IDs (the `target_ids` projection)."""

    certificate: ManagedCertificate
    target_ids: list[str]


@dataclass(frozen=True, slots=True)
class CursorPage:
    items: list[dict[str, Any]]  # each certificate's columns and its `target_ids`, as CertificateOut reads them
    total: int
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class _Create:
    service: CertificateService
    spec: CertificateSpec
    actor: Actor


class CertificateService:
    def __init__(self, db: Database, clock: Clock, keygen_mode: KeygenMode = KeygenMode.AGENT) -> None:
        self._db, self._clock, self._keygen_mode = db, clock, keygen_mode

    def writes_like(self, other: CertificateService) -> bool:
        """Same database, clock and key-generation mode: creates of both can share a transaction."""
        return (self._db, self._clock, self._keygen_mode) == (other._db, other._clock, other._keygen_mode)

    # -- reads ---------------------------------------------------------------------------------
    def get(self, cert_id: str) -> CertificateView:
        with self._db.read() as session:
            store = CertificateStore(session)
            cert = store.get(cert_id)
            return CertificateView(cert, store.target_ids([cert.id])[cert.id])

    def list_page(self, flt: CertificateFilter, sort: Sort, request: PageRequest) -> Page[CertificateView]:
        with self._db.read() as session:
            store = CertificateStore(session)
            page = store.paginate(listing.ordered(listing.filtered(flt), sort), request)
            return Page(items=_views(store, page.items), total=page.total, page=page.page, per_page=page.per_page)

    def list_after(self, flt: CertificateFilter, sort: Sort, cursor: str | None, size: int) -> CursorPage:
        with self._db.read() as session:
            store = CertificateStore(session)
            base = listing.filtered(flt)
            if flt.status_only():  # every page of a walk repeats the total: read it, don't count rows
                total = StatsStore(session).kept_certificate_count(flt.status)
            else:
                total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
            stmt = listing.ordered(base, sort)
            if cursor:
                stmt = listing.after(stmt, sort, Position.decode(cursor, sort))
            page = stmt.limit(size + 1)
            # Plain rows, not ORM objects: a page is only read and answered (ORM loading was a tenth of it).
            rows = session.execute(page.with_only_columns(*CERTIFICATE_COLUMNS)).mappings().all()
            more = len(rows) > size
            rows = rows[:size]
            next_cursor = Position.of_row(rows[-1], sort).encode(sort) if more and rows else None
            targets = store.target_ids_of(page.with_only_columns(ManagedCertificate.id)) if rows else {}
            items = [dict(row) | {"target_ids": targets.get(row["id"], [])} for row in rows]
            return CursorPage(items=items, total=total, next_cursor=next_cursor)

    def versions(self, cert_id: str, request: PageRequest) -> Page[CertificateVersion]:
        with self._db.read() as session:
            store = CertificateStore(session)
            store.get(cert_id)
            return store.paginate(store.versions(cert_id), request)

    # -- writes --------------------------------------------------------------------------------
    def create(self, spec: CertificateSpec, actor: Actor) -> CertificateView:
        """A new certificate, its audit row and, unless imported or given a status, its issuance job."""
        outcome = self.create_many([(spec, actor)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def create_together(self, spec: CertificateSpec, actor: Actor) -> CertificateView:
        """`create` for the API's event loop: creates that arrive while others are written share the next
        transaction, and one worker-thread hop (db/group_commit.py); each is still all or nothing, and
        answers as it would alone."""
        if not _batchable(spec):
            return await anyio.to_thread.run_sync(self._create_one, spec, actor)
        return await _group_commit(self._db).submit(_Create(self, spec, actor))

    def create_many(self, requests: Sequence[tuple[CertificateSpec, Actor]]) -> list[CertificateView | Exception]:
        """Each create's outcome, its view or the error `create` would raise, as if made one after another.

        Creates without targets or a PEM to import share one transaction: one query checks them all, each
        table gets one multi-row INSERT. If that transaction fails (a concurrent writer took a name, a
        referenced row was deleted), they are made again one at a time, so each gets the answer it would
        have had alone."""
        if requests and all(_batchable(spec) for spec, _ in requests):
            try:
                return self._create_together(requests)
            except Exception as exc:
                log.info("certificate.create_batch_retried", extra={"creates": len(requests), "error": str(exc)})
        outcomes: list[CertificateView | Exception] = []
        for spec, actor in requests:
            try:
                outcomes.append(self._create_one(spec, actor))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _create_one(self, spec: CertificateSpec, actor: Actor) -> CertificateView:
        now = self._clock.now()
        with self._db.begin() as session:
            cert_id = spec.id or new_id("mc")
            policy_and_profile = check_new_certificate(session, spec, cert_id)
            targets = _check_targets(session, spec.target_ids, self._keygen_mode)
            common_name, sans = check_common_name(spec.common_name), [check_san(s) for s in dict.fromkeys(spec.sans)]
            cert = self._add_new(session, spec, cert_id, common_name, sans, targets, now, actor)
            CertificateStore(session).flush()
            del policy_and_profile
            return CertificateView(cert, targets)

    def _create_together(self, requests: Sequence[tuple[CertificateSpec, Actor]]) -> list[CertificateView | Exception]:
        """Creates without targets or a PEM: one query checks them all, one INSERT per table writes them."""
        now = self._clock.now()
        with self._db.begin() as session:
            ids = [spec.id or new_id("mc") for spec, _ in requests]
            references = BatchReferences.load(session, [spec for spec, _ in requests], ids)
            rows = NewRows()
            outcomes: list[CertificateView | Exception] = []
            for (spec, actor), cert_id in zip(requests, ids, strict=True):
                try:
                    references.check(spec, cert_id)
                    common_name = check_common_name(spec.common_name)
                    sans = [check_san(s) for s in dict.fromkeys(spec.sans)]
                except CertctlError as exc:
                    outcomes.append(exc)
                    continue
                references.claim(spec, cert_id)
                cert = self._new_rows(rows, references, spec, cert_id, common_name, sans, now, actor)
                outcomes.append(CertificateView(cert, []))
            rows.write(session)
            return outcomes

    def _new_rows(
        self,
        rows: NewRows,
        references: BatchReferences,
        spec: CertificateSpec,
        cert_id: str,
        common_name: str,
        sans: list[str],
        now: datetime,
        actor: Actor,
    ) -> ManagedCertificate:
        """Adds the rows `_add_new` would for a create without targets or PEM; returns the certificate
        (not in any session) for the answer."""
        status = spec.status or CertificateStatus.PENDING
        job_status = None
        if spec.status in (None, CertificateStatus.PENDING):  # issuance starts (start_issuance, brand new)
            requires_approval = references.requires_approval.get(spec.certificate_profile_id or "", False)
            job_status = first_job_status(requires_approval, self._keygen_mode)
            if job_status is not JobStatus.AWAITING_APPROVAL:
                status = CertificateStatus.RENEWAL_IN_PROGRESS
        certificate = {
            "id": cert_id,
            "name": spec.name,
            "common_name": common_name,
            "sans": sans,
            "environment": spec.environment,
            "owner_id": spec.owner_id,
            "team_id": spec.team_id,
            "issuer_id": spec.issuer_id,
            "renewal_policy_id": spec.renewal_policy_id,
            "certificate_profile_id": spec.certificate_profile_id,
            "status": status,
            "tags": dict(spec.tags),
            "source": "API",
            "created_at": now,
            "updated_at": now,
            "expires_at": None,
            "last_renewal_at": None,
            "last_deployment_at": None,
            "revoked_at": None,
            "revocation_reason": None,
        }
        rows.certificates.append(certificate)
        created = {"common_name": common_name, "issuer_id": spec.issuer_id, "target_ids": []}
        rows.audit.append(audit_row(actor, "certificate_created", "certificate", cert_id, created, self._clock.now()))
        if job_status is not None:
            job_id = new_id("job")
            rows.jobs.append(
                {
                    "id": job_id,
                    "type": JobType.ISSUANCE,
                    "certificate_id": cert_id,
                    "agent_id": None,  # no targets, so no agent to make the key
                    "status": job_status,
                    "attempts": 0,
                    "max_attempts": max_attempts_for(references.max_retries[spec.renewal_policy_id]),
                    "scheduled_at": now,
                    "created_at": now,
                }
            )
            details = job_created_details(job_id, JobType.ISSUANCE, job_status, "created")
            rows.audit.append(
                audit_row(actor, "renewal_job_created", "certificate", cert_id, details, self._clock.now())
            )
        return ManagedCertificate(**certificate)

    def _add_new(
        self,
        session: Session,
        spec: CertificateSpec,
        cert_id: str,
        common_name: str,
        sans: list[str],
        targets: list[str],
        now: datetime,
        actor: Actor,
    ) -> ManagedCertificate:
        """Adds a checked new certificate with its rows to the session; they are written at the next flush."""
        cert = ManagedCertificate(
            id=cert_id,
            name=spec.name,
            common_name=common_name,
            sans=sans,
            environment=spec.environment,
            owner_id=spec.owner_id,
            team_id=spec.team_id,
            issuer_id=spec.issuer_id,
            renewal_policy_id=spec.renewal_policy_id,
            certificate_profile_id=spec.certificate_profile_id,
            status=spec.status or CertificateStatus.PENDING,
            tags=dict(spec.tags),
            source="API",
            created_at=now,
            updated_at=now,
            # Set, not left unloaded: reading an unloaded attribute of the detached result costs ~20 µs each.
            expires_at=None,
            last_renewal_at=None,
            last_deployment_at=None,
            revoked_at=None,
            revocation_reason=None,
        )
        session.add(cert)
        if targets:
            store = CertificateStore(session)
            # Without relationships a flush orders tables by class name: the mappings would go first.
            store.flush()
            store.add_targets(cert.id, targets, now)
        AuditRecorder(session, self._clock).record(
            actor,
            "certificate_created",
            "certificate",
            cert.id,
            {"common_name": cert.common_name, "issuer_id": cert.issuer_id, "target_ids": targets},
        )
        if spec.certificate_pem is not None:
            self._import(session, cert, spec.certificate_pem)
        elif spec.status in (None, CertificateStatus.PENDING):
            start_issuance(
                session,
                cert,
                actor=actor,
                clock=self._clock,
                keygen_mode=self._keygen_mode,
                trigger="created",
                brand_new=True,
                flush=False,
            )
        return cert

    def update(self, cert_id: str, changes: Mapping[str, Any], actor: Actor) -> CertificateView:
        now = self._clock.now()
        with self._db.begin() as session:
            store = CertificateStore(session)
            cert = store.get(cert_id)
            changes = dict(changes)
            status = changes.pop("status", None)
            if status is not None and status != cert.status:
                raise ValidationFailed("status is managed by the certificate lifecycle; use /renew, /revoke or DELETE")
            if "name" in changes and store.name_taken(changes["name"], except_id=cert_id):
                raise AlreadyExists("certificate", "name", changes["name"])
            if "common_name" in changes:
                check_common_name(changes["common_name"])
            if "sans" in changes:
                changes["sans"] = [check_san(s) for s in dict.fromkeys(changes["sans"])]
            _check_references(
                session,
                owner_id=changes.get("owner_id"),
                team_id=changes.get("team_id"),
                issuer_id=changes.get("issuer_id"),
                renewal_policy_id=changes.get("renewal_policy_id"),
                profile_id=changes.get("certificate_profile_id"),
            )
            target_ids = changes.pop("target_ids", None)
            for name, value in changes.items():
                setattr(cert, name, value)
            cert.updated_at = now
            if target_ids is not None:
                current = store.target_ids([cert.id])[cert.id]
                wanted = _check_targets(session, target_ids, self._keygen_mode)
                store.replace_targets(cert.id, wanted, now)
                _deploy_to_new_targets(session, cert, set(wanted) - set(current), now, actor)
            store.flush()
            AuditRecorder(session, self._clock).record(
                actor,
                "certificate_updated",
                "certificate",
                cert.id,
                {"fields": sorted([*changes, *(["target_ids"] if target_ids is not None else [])])},
            )
            return CertificateView(cert, store.target_ids([cert.id])[cert.id])

    def archive(self, cert_id: str, actor: Actor) -> None:
        """Soft delete: status Archived (final); open jobs are cancelled."""
        now = self._clock.now()
        with self._db.begin() as session:
            store = CertificateStore(session)
            cert = store.get(cert_id)
            if cert.status is CertificateStatus.ARCHIVED:
                return
            JobStore(session).cancel_open(Job.certificate_id == cert.id, now, "certificate archived")
            cert.status, cert.updated_at = CertificateStatus.ARCHIVED, now
            store.flush()
            AuditRecorder(session, self._clock).record(actor, "certificate_archived", "certificate", cert.id)

    def renew(self, cert_id: str, actor: Actor, *, force: bool = False) -> Job:
        with self._db.begin() as session:
            cert = CertificateStore(session).get(cert_id)
            job = start_issuance(
                session,
                cert,
                actor=actor,
                clock=self._clock,
                keygen_mode=self._keygen_mode,
                force=force,
                trigger="manual",
            )
            AuditRecorder(session, self._clock).record(
                actor, "renewal_triggered", "certificate", cert.id, {"job_id": job.id, "force": force}
            )
            return job

    def replace_targets(self, cert_id: str, target_ids: Sequence[str], actor: Actor) -> list[str]:
        return self.update(cert_id, {"target_ids": list(target_ids)}, actor).target_ids

    def add_target(self, cert_id: str, target_id: str, actor: Actor) -> bool:
        """Map one target; returns False when it was already mapped."""
        with self._db.begin() as session:
            store = CertificateStore(session)
            cert = store.get(cert_id)
            current = store.target_ids([cert_id])[cert_id]
            if target_id in current:
                return False
            wanted = _check_targets(session, [*current, target_id], self._keygen_mode)
            now = self._clock.now()
            store.replace_targets(cert_id, wanted, now)
            _deploy_to_new_targets(session, cert, {target_id}, now, actor)
            AuditRecorder(session, self._clock).record(
                actor, "certificate_target_mapped", "certificate", cert_id, {"target_id": target_id}
            )
            return True

    def remove_target(self, cert_id: str, target_id: str, actor: Actor) -> None:
        now = self._clock.now()
        with self._db.begin() as session:
            store = CertificateStore(session)
            store.get(cert_id)
            current = store.target_ids([cert_id])[cert_id]
            if target_id not in current:
                raise ValidationFailed(f"target {target_id} is not mapped to certificate {cert_id}")
            store.replace_targets(cert_id, [t for t in current if t != target_id], now)
            JobStore(session).cancel_open(
                (Job.certificate_id == cert_id) & (Job.target_id == target_id), now, "target unmapped"
            )
            store.flush()
            AuditRecorder(session, self._clock).record(
                actor, "certificate_target_unmapped", "certificate", cert_id, {"target_id": target_id}
            )

    def export_pem(self, cert_id: str, actor: Actor) -> PemExport:
        return split_pem(self._latest_chain(cert_id, actor, "export_pem"))

    def export_pkcs12(self, cert_id: str, password: str, actor: Actor) -> bytes:
        return pkcs12_bundle(self._latest_chain(cert_id, actor, "export_pkcs12"), cert_id, password)

    def _latest_chain(self, cert_id: str, actor: Actor, action: str) -> str:
        with self._db.begin() as session:
            store = CertificateStore(session)
            store.get(cert_id)
            version = store.latest_version(cert_id)
            if version is None:
                raise NotFound("issued version of certificate", cert_id)
            AuditRecorder(session, self._clock).record(
                actor, action, "certificate", cert_id, {"version_id": version.id, "serial": version.serial_number}
            )
            return version.pem_chain

    def mapped_targets(self, cert_id: str) -> list[DeploymentTarget]:
        with self._db.read() as session:
            store = CertificateStore(session)
            store.get(cert_id)
            ids = store.target_ids([cert_id])[cert_id]
            return [t for t in (session.get(DeploymentTarget, i) for i in ids) if t is not None]

    def _import(self, session: Session, cert: ManagedCertificate, pem: str) -> None:
        parsed = parse_certificate_pem(pem)
        store = CertificateStore(session)
        if store.fingerprint_known(parsed.fingerprint_sha256):
            raise Conflict(f"a certificate with SHA-256 fingerprint {parsed.fingerprint_sha256} is already stored")
        session.add(
            CertificateVersion(
                id=new_id("certver"),
                certificate_id=cert.id,
                serial_number=parsed.serial_number,
                not_before=parsed.not_before,
                not_after=parsed.not_after,
                fingerprint_sha256=parsed.fingerprint_sha256,
                pem_chain=parsed.pem_chain,
                key_algorithm=parsed.key_algorithm,
                key_size=parsed.key_size,
                created_at=self._clock.now(),
            )
        )
        cert.expires_at = parsed.not_after
        if cert.status is CertificateStatus.PENDING:
            cert.status = CertificateStatus.ACTIVE
        store.flush()


_GROUP_COMMITS: WeakKeyDictionary[Database, GroupCommit[_Create, CertificateView]] = WeakKeyDictionary()
_GROUP_COMMITS_LOCK = threading.Lock()


def _group_commit(db: Database) -> GroupCommit[_Create, CertificateView]:
    """One queue of creates per database, shared by every service over it (one is built per request)."""
    with _GROUP_COMMITS_LOCK:
        group = _GROUP_COMMITS.get(db)
        if group is None:
            group = _GROUP_COMMITS[db] = GroupCommit(_write_creates, MAX_CREATE_BATCH)
        return group


def _write_creates(creates: Sequence[_Create]) -> list[CertificateView | Exception]:
    """Each run of creates from services alike (same clock and key-generation mode) is written by one of them."""
    outcomes: list[CertificateView | Exception] = []
    start = 0
    while start < len(creates):
        service = creates[start].service
        end = start + 1
        while end < len(creates) and creates[end].service.writes_like(service):
            end += 1
        outcomes += service.create_many([(create.spec, create.actor) for create in creates[start:end]])
        start = end
    return outcomes


def _batchable(spec: CertificateSpec) -> bool:
    """Targets and imports are rarer and read or flush mid-way: they get a transaction of their own."""
    return spec.certificate_pem is None and not spec.target_ids


def _views(store: CertificateStore, rows: Sequence[ManagedCertificate]) -> list[CertificateView]:
    mapping = store.target_ids(row.id for row in rows)
    return [CertificateView(row, mapping[row.id]) for row in rows]


def _check_references(
    session: Session,
    *,
    owner_id: str | None,
    team_id: str | None,
    issuer_id: str | None,
    renewal_policy_id: str | None,
    profile_id: str | None,
) -> None:
    for model, field_name, value in (
        (Owner, "owner_id", owner_id),
        (Team, "team_id", team_id),
        (Issuer, "issuer_id", issuer_id),
        (RenewalPolicy, "renewal_policy_id", renewal_policy_id),
        (CertificateProfile, "certificate_profile_id", profile_id),
    ):
        if value is not None and session.get(model, value) is None:
            raise ValidationFailed(f"{field_name} {value!r} does not exist")


def _check_targets(session: Session, target_ids: Sequence[str], mode: KeygenMode) -> list[str]:
    wanted = list(dict.fromkeys(target_ids))
    agents: set[str] = set()
    for target_id in wanted:
        target = session.get(DeploymentTarget, target_id)
        if target is None:
            raise ValidationFailed(f"target {target_id!r} does not exist")
        if target.retired_at is not None:
            raise ValidationFailed(f"target {target_id!r} is retired")
        agents.add(target.agent_id)
    if mode is KeygenMode.AGENT and len(agents) > 1:
        raise ValidationFailed(
            "targets belong to different agents; in agent key-generation mode the private key exists only on "
            "one agent, so a certificate cannot be shared across agents (use one certificate per agent, or "
            "CERTCTL_KEYGEN_MODE=server)"
        )
    return wanted


# A certificate serving its current version; one in any other state has nothing a new target should get.
_DEPLOYABLE = frozenset({CertificateStatus.ACTIVE, CertificateStatus.EXPIRING, CertificateStatus.RENEWAL_IN_PROGRESS})


def _deploy_to_new_targets(
    session: Session, cert: ManagedCertificate, added: set[str], now: datetime, actor: Actor
) -> None:
    """A target mapped to a certificate that is already issued gets the current version at once, instead of
    waiting for the next renewal."""
    if added and cert.status in _DEPLOYABLE:
        queue_deployments(session, cert, now, target_ids=added, actor=actor, trigger="mapped")
