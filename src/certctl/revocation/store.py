"""Revocation ledger queries. Reads select columns, not ORM objects: a CRL of 100,000 entries is one
query and 100,000 tuples. Stores never commit; the service owns the transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from certctl.certificates.models import CertificateVersion
from certctl.issuers.models import Issuer
from certctl.pki.serials import canonical_serial
from certctl.profiles.models import CertificateProfile
from certctl.profiles.rules import SHORT_LIVED_TTL_SECONDS
from certctl.revocation.models import CertificateRevocation

# A CRL entry: canonical serial, when it was revoked, the RFC 5280 reason name.
CrlEntry = tuple[str, datetime, str]


@dataclass(frozen=True, slots=True)
class LatestVersion:
    """The version a revocation names: the certificate's newest (pki.md §A2.2)."""

    version_id: str
    serial: str
    not_after: datetime


class RevocationStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: CertificateRevocation) -> CertificateRevocation:
        row.serial_number = canonical_serial(row.serial_number)
        self.session.add(row)
        return row

    def add_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """One multi-row INSERT; each row's serial must already be canonical."""
        if rows:
            self.session.execute(insert(CertificateRevocation), list(rows))

    def find(self, issuer_id: str, serial: str | int) -> CertificateRevocation | None:
        """The ledger row of (issuer, serial); the serial may be in any spelling `canonical_serial` reads."""
        return self.session.scalar(
            select(CertificateRevocation).where(
                CertificateRevocation.issuer_id == issuer_id,
                CertificateRevocation.serial_number == canonical_serial(serial),
            )
        )

    def latest_for_certificate(self, certificate_id: str) -> CertificateRevocation | None:
        return self.session.scalar(
            select(CertificateRevocation)
            .where(CertificateRevocation.certificate_id == certificate_id)
            .order_by(CertificateRevocation.revoked_at.desc(), CertificateRevocation.id.desc())
            .limit(1)
        )

    def already_revoked(self, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (issuer_id, canonical serial) pairs the ledger already holds."""
        if not pairs:
            return set()
        r = CertificateRevocation
        wanted = set(pairs)
        rows = self.session.execute(
            select(r.issuer_id, r.serial_number).where(r.serial_number.in_({serial for _, serial in wanted}))
        )
        return {(issuer_id, serial) for issuer_id, serial in rows if (issuer_id, serial) in wanted}

    def entries_for_crl(self, issuer_id: str, now: datetime) -> list[CrlEntry]:
        """(serial, revoked_at, reason) of every revoked, not yet expired, not short-lived certificate of the
        issuer, by serial. Expired entries drop off (RFC 5280 §5: a CRL lists certificates still valid)."""
        r = CertificateRevocation
        rows = self.session.execute(
            select(r.serial_number, r.revoked_at, r.reason)
            .where(r.issuer_id == issuer_id, r.not_after > now, r.short_lived.is_(False))
            .order_by(r.serial_number)
        )
        return [(serial, revoked_at, reason) for serial, revoked_at, reason in rows]

    def mark_issuer_notified(self, revocation_id: str) -> None:
        self.session.execute(
            update(CertificateRevocation)
            .where(CertificateRevocation.id == revocation_id)
            .values(issuer_notified=True)
            .execution_options(synchronize_session=False)
        )

    def bump_revision(self, issuer_ids: Iterable[str]) -> None:
        """issuers.revocation_revision + 1: CRL and OCSP caches on every replica compare it to know they are stale."""
        ids = sorted(set(issuer_ids))  # sorted: concurrent bumps lock the issuer rows in one order
        if ids:
            self.session.execute(
                update(Issuer)
                .where(Issuer.id.in_(ids))
                .values(revocation_revision=Issuer.revocation_revision + 1)
                .execution_options(synchronize_session=False)
            )

    def latest_versions(self, certificate_ids: Collection[str]) -> dict[str, LatestVersion]:
        """Each certificate's newest version (by created_at, then id), in one windowed query."""
        if not certificate_ids:
            return {}
        v = CertificateVersion
        rank = (
            func.row_number()
            .over(partition_by=v.certificate_id, order_by=(v.created_at.desc(), v.id.desc()))
            .label("rank")
        )
        ranked = (
            select(v.certificate_id, v.id, v.serial_number, v.not_after, rank)
            .where(v.certificate_id.in_(list(certificate_ids)))
            .subquery()
        )
        rows = self.session.execute(
            select(ranked.c.certificate_id, ranked.c.id, ranked.c.serial_number, ranked.c.not_after).where(
                ranked.c.rank == 1
            )
        )
        return {
            cert_id: LatestVersion(version_id, canonical_serial(serial), not_after)
            for cert_id, version_id, serial, not_after in rows
        }

    def short_lived_profiles(self) -> set[str]:
        """Profiles whose certificates are short-lived (allow_short_lived and 0 < max_ttl < 1 h, core.md §2.9):
        their revocations stay off CRLs and OCSP answers `good` (pki.md §A2.3-4)."""
        p = CertificateProfile
        return set(
            self.session.scalars(
                select(p.id).where(
                    p.allow_short_lived.is_(True), p.max_ttl_seconds > 0, p.max_ttl_seconds < SHORT_LIVED_TTL_SECONDS
                )
            )
        )
