"""Certificate queries: look-ups, target mappings, versions, open jobs, batched iteration."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import Select, delete, select

from certctl.certificates.models import CertificateTargetMapping, CertificateVersion, ManagedCertificate
from certctl.db.store import Store
from certctl.jobs.models import Job, JobStatus, JobType

OPEN_JOB_STATUSES = (JobStatus.PENDING, JobStatus.AWAITING_CSR, JobStatus.AWAITING_APPROVAL, JobStatus.RUNNING)
BATCH_SIZE = 500


class CertificateStore(Store[ManagedCertificate]):
    model = ManagedCertificate
    kind = "certificate"

    def name_taken(self, name: str, except_id: str | None = None) -> bool:
        m = ManagedCertificate
        return self.any(select(m.id).where(m.name == name, m.id != (except_id or "")))

    def target_ids(self, certificate_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(certificate_ids)
        found: dict[str, list[str]] = {cert_id: [] for cert_id in ids}
        if not ids:
            return found
        rows = self.session.execute(
            select(CertificateTargetMapping.certificate_id, CertificateTargetMapping.target_id)
            .where(CertificateTargetMapping.certificate_id.in_(ids))
            .order_by(CertificateTargetMapping.created_at, CertificateTargetMapping.target_id)
        )
        for cert_id, target_id in rows:
            found[cert_id].append(target_id)
        return found

    def target_ids_of(self, certificate_ids: Select[tuple[str]]) -> dict[str, list[str]]:
        """Mapped target IDs of the certificates `certificate_ids` selects, only those that have any. Given
        a page's own query as a subquery, the statement stays short and cached whatever the page size, where
        an IN list binds (and the driver parses) one parameter per row."""
        m = CertificateTargetMapping
        found: dict[str, list[str]] = {}
        rows = self.session.execute(
            select(m.certificate_id, m.target_id)
            .where(m.certificate_id.in_(certificate_ids))
            .order_by(m.created_at, m.target_id)
        )
        for cert_id, target_id in rows:
            found.setdefault(cert_id, []).append(target_id)
        return found

    def replace_targets(self, certificate_id: str, target_ids: Sequence[str], now: datetime) -> None:
        current = set(self.target_ids([certificate_id])[certificate_id])
        wanted = list(dict.fromkeys(target_ids))
        removed = current - set(wanted)
        if removed:
            self.session.execute(
                delete(CertificateTargetMapping).where(
                    CertificateTargetMapping.certificate_id == certificate_id,
                    CertificateTargetMapping.target_id.in_(removed),
                )
            )
        for target_id in wanted:
            if target_id not in current:
                self.session.add(
                    CertificateTargetMapping(certificate_id=certificate_id, target_id=target_id, created_at=now)
                )
        self.flush()

    def add_targets(self, certificate_id: str, target_ids: Sequence[str], now: datetime) -> None:
        """Maps targets to a certificate that has none yet (one created in this transaction)."""
        self.session.add_all(
            CertificateTargetMapping(certificate_id=certificate_id, target_id=target_id, created_at=now)
            for target_id in dict.fromkeys(target_ids)
        )

    def latest_version(self, certificate_id: str) -> CertificateVersion | None:
        return self.session.scalar(
            select(CertificateVersion)
            .where(CertificateVersion.certificate_id == certificate_id)
            .order_by(CertificateVersion.created_at.desc(), CertificateVersion.id.desc())
            .limit(1)
        )

    def versions(self, certificate_id: str) -> Select[CertificateVersion]:
        return (
            select(CertificateVersion)
            .where(CertificateVersion.certificate_id == certificate_id)
            .order_by(CertificateVersion.created_at.desc(), CertificateVersion.id.desc())
        )

    def fingerprint_known(self, fingerprint: str) -> bool:
        return self.any(select(CertificateVersion.id).where(CertificateVersion.fingerprint_sha256 == fingerprint))

    def open_issuance_jobs(self, certificate_id: str) -> Sequence[Job]:
        return self.session.scalars(
            select(Job).where(
                Job.certificate_id == certificate_id,
                Job.type.in_((JobType.ISSUANCE, JobType.RENEWAL)),
                Job.status.in_(OPEN_JOB_STATUSES),
            )
        ).all()

    def iterate(self, stmt: Select[ManagedCertificate]) -> Iterator[Sequence[ManagedCertificate]]:
        """All matching rows, in id order, BATCH_SIZE at a time: bulk operations never stop at a page."""
        last = ""
        while True:
            batch = self.session.scalars(
                stmt.where(ManagedCertificate.id > last).order_by(ManagedCertificate.id).limit(BATCH_SIZE)
            ).all()
            if not batch:
                return
            yield batch
            last = batch[-1].id
