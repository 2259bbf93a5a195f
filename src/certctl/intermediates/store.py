"""Queries over `intermediate_cas` (and the certificate rows that still depend on a CA): no rules here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from certctl.certificates.models import CertificateStatus, CertificateVersion, ManagedCertificate
from certctl.errors import NotFound
from certctl.intermediates.models import CAState, IntermediateCA
from certctl.revocation.models import CertificateRevocation

MAX_DEPTH = 32
"""A chain longer than this is a loop in the data, not a hierarchy."""


class IntermediateCAStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, ca_id: str, *, for_update: bool = False) -> IntermediateCA:
        """Raises NotFound."""
        query = select(IntermediateCA).where(IntermediateCA.id == ca_id)
        if for_update:
            query = query.with_for_update()
        ca = self._session.scalars(query).one_or_none()
        if ca is None:
            raise NotFound("intermediate CA", ca_id)
        return ca

    def find(self, ca_id: str) -> IntermediateCA | None:
        return self._session.get(IntermediateCA, ca_id)

    def for_issuer(self, issuer_id: str) -> list[IntermediateCA]:
        """Every CA of the issuer, roots first, then by creation time (a flat list, pki.md §A1.6)."""
        query = (
            select(IntermediateCA)
            .where(IntermediateCA.owning_issuer_id == issuer_id)
            .order_by(IntermediateCA.parent_ca_id.is_not(None), IntermediateCA.created_at, IntermediateCA.id)
        )
        return list(self._session.scalars(query))

    def active_root(self, issuer_id: str) -> IntermediateCA | None:
        query = select(IntermediateCA).where(
            IntermediateCA.owning_issuer_id == issuer_id,
            IntermediateCA.parent_ca_id.is_(None),
            IntermediateCA.state == CAState.ACTIVE,
        )
        return self._session.scalars(query).first()

    def name_taken(self, issuer_id: str, name: str) -> bool:
        query = select(IntermediateCA.id).where(
            IntermediateCA.owning_issuer_id == issuer_id, IntermediateCA.name == name
        )
        return self._session.scalars(query).first() is not None

    def active_children(self, ca_id: str) -> int:
        query = select(func.count()).where(IntermediateCA.parent_ca_id == ca_id, IntermediateCA.state == CAState.ACTIVE)
        return int(self._session.scalar(query) or 0)

    def lineage(self, ca_id: str) -> list[IntermediateCA]:
        """The CA and its ancestors, leaf-CA first, root last. Raises NotFound, or ValueError on a loop."""
        chain = [self.get(ca_id)]
        while (parent_id := chain[-1].parent_ca_id) is not None:
            if len(chain) >= MAX_DEPTH:
                raise ValueError(f"intermediate CA {ca_id} has more than {MAX_DEPTH} ancestors")
            chain.append(self.get(parent_id))
        return chain

    def live_certificates_under(self, issuer_id: str, ca_cert_pem: str, now: datetime) -> int:
        """Certificate versions of the issuer whose chain holds this CA certificate and that are neither
        expired nor revoked (so retiring the CA for good would strand them)."""
        revoked = exists().where(
            CertificateRevocation.issuer_id == issuer_id,
            CertificateRevocation.serial_number == CertificateVersion.serial_number,
        )
        query = (
            select(func.count())
            .select_from(CertificateVersion)
            .join(ManagedCertificate, ManagedCertificate.id == CertificateVersion.certificate_id)
            .where(
                ManagedCertificate.issuer_id == issuer_id,
                ManagedCertificate.status != CertificateStatus.REVOKED,
                CertificateVersion.not_after > now,
                CertificateVersion.pem_chain.contains(ca_cert_pem, autoescape=True),
                ~revoked,
            )
        )
        return int(self._session.scalar(query) or 0)
