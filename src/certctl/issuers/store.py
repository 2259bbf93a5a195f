from __future__ import annotations

from sqlalchemy import Select, func, select

from certctl.certificates.models import ManagedCertificate
from certctl.db.store import Store
from certctl.issuers.models import Issuer


class IssuerStore(Store[Issuer]):
    model = Issuer
    kind = "issuer"

    def listing(self) -> Select[Issuer]:
        return select(Issuer).order_by(Issuer.name, Issuer.id)

    def name_taken(self, name: str, except_id: str | None = None) -> bool:
        return self.any(select(Issuer.id).where(Issuer.name == name, Issuer.id != (except_id or "")))

    def certificate_count(self, issuer_id: str) -> int:
        """Managed certificates issued through this issuer (they block its deletion)."""
        stmt = select(func.count()).select_from(ManagedCertificate).where(ManagedCertificate.issuer_id == issuer_id)
        return self.session.scalar(stmt) or 0
