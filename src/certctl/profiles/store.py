from __future__ import annotations

from sqlalchemy import Select, select

from certctl.db.store import Store
from certctl.profiles.models import CertificateProfile


class ProfileStore(Store[CertificateProfile]):
    model = CertificateProfile
    kind = "certificate profile"

    def listing(self) -> Select[CertificateProfile]:
        return select(CertificateProfile).order_by(CertificateProfile.name, CertificateProfile.id)

    def name_taken(self, name: str, except_id: str | None = None) -> bool:
        return self.any(
            select(CertificateProfile.id).where(
                CertificateProfile.name == name, CertificateProfile.id != (except_id or "")
            )
        )
