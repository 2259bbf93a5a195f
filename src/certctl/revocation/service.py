"""Revoking certificates, one at a time or in bulk (pki.md §A2.2).

Each revocation commits, in one transaction, the certificate's Revoked status, the ledger row, the
Revocation job that tells the issuer, the issuer's revocation_revision bump, the audit row and the
notification rows (revocation/batch.py). After the commit the notification rows go to the dispatcher and
each listener (CRL rebuild, OCSP cache invalidation) is called once per issuer touched; a listener's
failure is logged and never undoes or fails the revocation.

Audit actions: `certificate_revoked` (per certificate), `bulk_revocation_initiated` (per bulk call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from certctl.audit.service import AuditRecorder
from certctl.certificates import listing
from certctl.certificates.listing import CertificateFilter
from certctl.certificates.models import CertificateStatus, ManagedCertificate
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.errors import CertctlError, NotFound, ValidationFailed
from certctl.issuers.connectors import ConnectorRegistry
from certctl.notifications.lifecycle import LifecycleNotifier
from certctl.revocation.batch import BatchResult, Revoked, revoke_batch
from certctl.revocation.reasons import parse_reason
from certctl.revocation.store import RevocationStore
from certctl.security.roles import Actor

log = logging.getLogger("certctl.revocation")

Listener = Callable[[str], None]  # called with an issuer id after revocations of its certificates commit
Notify = Callable[[Collection[str]], object]  # the dispatcher's deliver_soon
BULK_CHUNK = 500  # certificates per bulk transaction
BULK_CRITERIA = "profile_id, owner_id, agent_id, issuer_id, team_id or certificate_ids"


class CertificateNotRevocable(ValidationFailed):
    """Already revoked, archived, or never issued (HTTP 400, as the original)."""

    def __init__(self, certificate_id: str, why: str) -> None:
        super().__init__(f"certificate {certificate_id} {why}")
        self.certificate_id, self.why = certificate_id, why


_WHY = {
    CertificateStatus.REVOKED: "is already revoked",
    CertificateStatus.ARCHIVED: "is archived and cannot be revoked",
}
NO_VERSION = "has no issued version to revoke"


@dataclass
class BulkRevocationOutcome:
    total_matched: int = 0
    total_revoked: int = 0
    total_skipped: int = 0
    total_failed: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (certificate_id, error)


class RevocationService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        connectors: ConnectorRegistry,
        *,
        notify: Notify | None = None,
        webhook_configured: bool = False,
        listeners: Sequence[Listener] = (),
    ) -> None:
        self._db, self._clock, self.connectors = db, clock, connectors
        self._notify, self._webhook_configured = notify, webhook_configured
        self.listeners: list[Listener] = list(listeners)

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def revoke(self, certificate_id: str, reason: str | None, actor: Actor) -> Revoked:
        """Revoke one certificate; `reason` is an RFC 5280 name, empty meaning unspecified.

        Raises NotFound, InvalidRevocationReason, CertificateNotRevocable (already revoked, archived,
        never issued).
        """
        name = parse_reason(reason)
        notifier = self._notifier()
        with self._db.begin() as session:
            cert = _lock(session, select(ManagedCertificate).where(ManagedCertificate.id == certificate_id))
            if not cert:
                raise NotFound("certificate", certificate_id)
            if (why := _WHY.get(cert[0].status)) is not None:
                raise CertificateNotRevocable(certificate_id, why)
            result = self._batch(session, cert, name, actor, notifier, self._short_lived(session))
            if not result.revoked:
                raise CertificateNotRevocable(certificate_id, NO_VERSION)
        self._after_commit(notifier.take_added(), result.issuer_ids)
        return result.revoked[0]

    def bulk_revoke(self, flt: CertificateFilter, reason: str | None, actor: Actor) -> BulkRevocationOutcome:
        """Revoke every certificate the filter matches, BULK_CHUNK per transaction.

        Skipped: already revoked, archived, never issued. A chunk whose transaction fails is retried one
        certificate at a time, so one bad row fails only itself. Listeners run once per issuer, at the end.
        Raises ValidationFailed without a criterion or a reason, InvalidRevocationReason.
        """
        if flt.is_empty():
            raise ValidationFailed(f"give at least one criterion: {BULK_CRITERIA}")
        if not (reason or "").strip():
            raise ValidationFailed("reason is required for a bulk revocation")
        name = parse_reason(reason)
        outcome = BulkRevocationOutcome()
        issuers: set[str] = set()
        with self._db.read() as session:
            short_lived = self._short_lived(session)
        last = ""
        while True:
            notified: list[str] = []
            with self._db.begin() as session:
                stmt = listing.filtered(flt).where(ManagedCertificate.id > last)
                certs = _lock(session, stmt.order_by(ManagedCertificate.id).limit(BULK_CHUNK))
                if not certs:
                    break
                last = certs[-1].id
                outcome.total_matched += len(certs)
                for result in self._chunk(session, certs, name, actor, short_lived, outcome, notified):
                    outcome.total_revoked += len(result.revoked)
                    outcome.total_skipped += len(result.final) + len(result.no_version)
                    issuers |= result.issuer_ids
            self._after_commit(notified, ())
        self._report_unknown_ids(flt, outcome)
        with self._db.begin() as session:
            AuditRecorder(session, self._clock).record(
                actor,
                "bulk_revocation_initiated",
                "certificate",
                "bulk",
                {
                    "reason": name,
                    "matched": outcome.total_matched,
                    "revoked": outcome.total_revoked,
                    "skipped": outcome.total_skipped,
                    "failed": outcome.total_failed,
                },
            )
        self._after_commit((), issuers)
        return outcome

    # -- helpers --------------------------------------------------------------------------------------

    def _chunk(
        self,
        session: Session,
        certs: Sequence[ManagedCertificate],
        reason: str,
        actor: Actor,
        short_lived: set[str],
        outcome: BulkRevocationOutcome,
        notified: list[str],
    ) -> list[BatchResult]:
        """The chunk as one batch; if that fails, each certificate alone (in savepoints)."""
        try:
            return [self._savepoint(session, certs, reason, actor, short_lived, notified)]
        except (CertctlError, SQLAlchemyError) as exc:
            log.warning("revocation.bulk_chunk_retried", extra={"certificates": len(certs), "error": str(exc)})
        results = []
        for cert in certs:
            try:
                results.append(self._savepoint(session, [cert], reason, actor, short_lived, notified))
            except (CertctlError, SQLAlchemyError) as exc:
                outcome.total_failed += 1
                outcome.errors.append((cert.id, str(exc)))
        return results

    def _savepoint(
        self,
        session: Session,
        certs: Sequence[ManagedCertificate],
        reason: str,
        actor: Actor,
        short_lived: set[str],
        notified: list[str],
    ) -> BatchResult:
        notifier = self._notifier()  # one per attempt: rows of a rolled-back savepoint are never handed on
        with session.begin_nested():
            result = self._batch(session, certs, reason, actor, notifier, short_lived)
        notified.extend(notifier.take_added())
        return result

    def _batch(
        self,
        session: Session,
        certs: Sequence[ManagedCertificate],
        reason: str,
        actor: Actor,
        notifier: LifecycleNotifier,
        short_lived: set[str],
    ) -> BatchResult:
        return revoke_batch(
            session,
            certs,
            reason=reason,
            actor=actor,
            now=self._clock.now(),
            notifier=notifier,
            short_lived_profiles=short_lived,
        )

    def _report_unknown_ids(self, flt: CertificateFilter, outcome: BulkRevocationOutcome) -> None:
        """Explicit certificate_ids that do not exist are failures the caller should see, not silence."""
        if not flt.ids:
            return
        with self._db.read() as session:
            wanted = set(flt.ids)
            found = set(session.scalars(select(ManagedCertificate.id).where(ManagedCertificate.id.in_(wanted))))
        for missing in sorted(wanted - found):
            outcome.total_failed += 1
            outcome.errors.append((missing, f"certificate {missing} not found"))

    def _short_lived(self, session: Session) -> set[str]:
        return RevocationStore(session).short_lived_profiles()

    def _notifier(self) -> LifecycleNotifier:
        return LifecycleNotifier(self._clock, webhook_configured=self._webhook_configured)

    def _after_commit(self, notification_ids: Collection[str], issuer_ids: Iterable[str]) -> None:
        """Hand the committed notification rows to the dispatcher, then tell each listener per issuer.
        Rows the dispatcher never gets are still pending and the notification processor sends them."""
        if notification_ids and self._notify is not None:
            try:
                self._notify(list(notification_ids))
            except Exception:  # delivery is best effort here; the processor loop is the guarantee
                log.exception("revocation.notify_failed")
        for issuer_id in sorted(set(issuer_ids)):
            for listener in self.listeners:
                try:
                    listener(issuer_id)
                except Exception:  # a CRL or OCSP refresh failing must never fail the revocation
                    log.exception("revocation.listener_failed", extra={"issuer_id": issuer_id})


def _lock(session: Session, stmt: Select[ManagedCertificate]) -> Sequence[ManagedCertificate]:
    """The rows, locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
    already holds the write lock), so a concurrent revoke of the same certificate waits, then sees Revoked."""
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=ManagedCertificate)
    return session.scalars(stmt.execution_options(populate_existing=True)).all()
