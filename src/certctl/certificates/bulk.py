"""Bulk renew and bulk reassign: every matching certificate, in batches, never a silent page cap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from certctl.audit.service import AuditRecorder
from certctl.certificates import listing
from certctl.certificates.issuance import start_issuance
from certctl.certificates.listing import CertificateFilter
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.certificates.store import CertificateStore
from certctl.clock import Clock
from certctl.config import KeygenMode
from certctl.db.engine import Database
from certctl.errors import CertctlError, ValidationFailed
from certctl.org.models import Owner, Team
from certctl.security.roles import Actor

SKIP_RENEW = frozenset({CertificateStatus.ARCHIVED, CertificateStatus.REVOKED, CertificateStatus.RENEWAL_IN_PROGRESS})


@dataclass
class BulkOutcome:
    total_matched: int = 0
    total_done: int = 0
    total_skipped: int = 0
    total_failed: int = 0
    enqueued: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


class BulkService:
    def __init__(self, db: Database, clock: Clock, keygen_mode: KeygenMode) -> None:
        self._db, self._clock, self._keygen_mode = db, clock, keygen_mode

    def renew(self, flt: CertificateFilter, actor: Actor) -> BulkOutcome:
        if flt.is_empty():
            raise ValidationFailed(
                "give at least one criterion: profile_id, owner_id, agent_id, issuer_id, team_id or certificate_ids"
            )
        outcome = BulkOutcome()
        with self._db.begin() as session:
            store = CertificateStore(session)
            for batch in store.iterate(listing.filtered(flt)):
                for cert in batch:
                    outcome.total_matched += 1
                    if cert.status in SKIP_RENEW:
                        outcome.total_skipped += 1
                        continue
                    try:
                        with session.begin_nested():
                            job = start_issuance(
                                session,
                                cert,
                                actor=actor,
                                clock=self._clock,
                                keygen_mode=self._keygen_mode,
                                trigger="bulk",
                            )
                    except CertctlError as exc:
                        outcome.total_failed += 1
                        outcome.errors.append((cert.id, str(exc)))
                        continue
                    outcome.total_done += 1
                    outcome.enqueued.append((cert.id, job.id))
            AuditRecorder(session, self._clock).record(
                actor,
                "bulk_renewal_initiated",
                "certificate",
                "bulk",
                {
                    "matched": outcome.total_matched,
                    "enqueued": outcome.total_done,
                    "skipped": outcome.total_skipped,
                    "failed": outcome.total_failed,
                },
            )
        return outcome

    def reassign(self, certificate_ids: Sequence[str], owner_id: str, team_id: str | None, actor: Actor) -> BulkOutcome:
        outcome = BulkOutcome()
        now = self._clock.now()
        with self._db.begin() as session:
            if session.get(Owner, owner_id) is None:
                raise ValidationFailed(f"owner_id {owner_id!r} does not exist")
            if team_id is not None and session.get(Team, team_id) is None:
                raise ValidationFailed(f"team_id {team_id!r} does not exist")
            wanted = list(dict.fromkeys(certificate_ids))
            found = {
                c.id: c for c in session.scalars(select(ManagedCertificate).where(ManagedCertificate.id.in_(wanted)))
            }
            for cert_id in wanted:
                cert = found.get(cert_id)
                if cert is None:
                    outcome.total_failed += 1
                    outcome.errors.append((cert_id, f"certificate {cert_id} not found"))
                    continue
                outcome.total_matched += 1
                if cert.owner_id == owner_id and (team_id is None or cert.team_id == team_id):
                    outcome.total_skipped += 1
                    continue
                cert.owner_id = owner_id
                cert.team_id = team_id or cert.team_id
                cert.updated_at = now
                outcome.total_done += 1
            CertificateStore(session).flush()
            AuditRecorder(session, self._clock).record(
                actor,
                "bulk_reassignment",
                "certificate",
                "bulk",
                {"owner_id": owner_id, "team_id": team_id, "reassigned": outcome.total_done},
            )
        return outcome
