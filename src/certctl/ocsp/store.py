"""The reads OCSP answers are made from: an issuer's revision stamp and a serial's status (pki.md §A2.4-5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from certctl.certificates.models import CertificateVersion, ManagedCertificate
from certctl.db.engine import Database
from certctl.issuers.models import Issuer
from certctl.ocsp.responder import GOOD, UNKNOWN, CertificateStatus, revoked
from certctl.revocation.models import CertificateRevocation


@dataclass(frozen=True, slots=True)
class IssuerStamp:
    """What, when it changes, makes cached answers of the issuer stale."""

    revocation_revision: int
    updated_at: datetime
    enabled: bool


_ISSUER_STAMP = select(Issuer.revocation_revision, Issuer.updated_at, Issuer.enabled).where(
    Issuer.id == bindparam("issuer_id")
)
_REVOCATION = select(
    CertificateRevocation.revoked_at, CertificateRevocation.reason, CertificateRevocation.short_lived
).where(
    CertificateRevocation.issuer_id == bindparam("issuer_id"),
    CertificateRevocation.serial_number == bindparam("serial"),
)
_ISSUED = (
    select(CertificateVersion.id)
    .join(ManagedCertificate, ManagedCertificate.id == CertificateVersion.certificate_id)
    .where(
        CertificateVersion.serial_number == bindparam("serial"), ManagedCertificate.issuer_id == bindparam("issuer_id")
    )
    .limit(1)
)
"""Built once: a miss runs them with parameters only (no per-call expression building)."""


class OCSPStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def issuer_stamp(self, issuer_id: str) -> IssuerStamp | None:
        with self._db.read() as session:
            row = session.execute(_ISSUER_STAMP, {"issuer_id": issuer_id}).first()
        return None if row is None else IssuerStamp(row[0], row[1], row[2])

    def certificate_status(self, issuer_id: str, serial: str) -> CertificateStatus:
        """`serial` is canonical. Revoked unless short-lived; good when the issuer issued it; else unknown."""
        params = {"issuer_id": issuer_id, "serial": serial}
        with self._db.read() as session:
            revocation = session.execute(_REVOCATION, params).first()
            if revocation is not None:
                # Short-lived certificates are never reported revoked: they expire soon enough (pki.md §A2.4).
                return GOOD if revocation.short_lived else revoked(revocation.revoked_at, revocation.reason)
            issued = session.execute(_ISSUED, params).first()
        return GOOD if issued is not None else UNKNOWN
