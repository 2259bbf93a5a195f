from __future__ import annotations

from sqlalchemy import Select, func, select

from certctl.agents.models import AgentGroup
from certctl.certificates.models import ManagedCertificate
from certctl.db.store import Store
from certctl.policies.models import RenewalPolicy
from certctl.profiles.models import CertificateProfile


class RenewalPolicyStore(Store[RenewalPolicy]):
    model = RenewalPolicy
    kind = "renewal policy"

    def listing(self) -> Select[RenewalPolicy]:
        return select(RenewalPolicy).order_by(RenewalPolicy.name, RenewalPolicy.id)

    def name_taken(self, name: str, except_id: str | None = None) -> bool:
        return self.any(
            select(RenewalPolicy.id).where(RenewalPolicy.name == name, RenewalPolicy.id != (except_id or ""))
        )

    def certificates_using(self, policy_id: str) -> int:
        stmt = select(func.count()).where(ManagedCertificate.renewal_policy_id == policy_id)
        return self.session.scalar(stmt) or 0

    def profile_exists(self, profile_id: str) -> bool:
        return self.any(select(CertificateProfile.id).where(CertificateProfile.id == profile_id))

    def agent_group_exists(self, group_id: str) -> bool:
        return self.any(select(AgentGroup.id).where(AgentGroup.id == group_id))
