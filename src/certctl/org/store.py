from __future__ import annotations

from sqlalchemy import Select, select

from certctl.certificates.models import ManagedCertificate
from certctl.db.store import Store
from certctl.org.models import Owner, Team


class TeamStore(Store[Team]):
    model = Team
    kind = "team"

    def listing(self) -> Select[Team]:
        return select(Team).order_by(Team.name, Team.id)

    def name_taken(self, name: str, except_id: str | None = None) -> bool:
        return self.any(select(Team.id).where(Team.name == name, Team.id != (except_id or "")))

    def referenced_by(self, team_id: str) -> str | None:
        """What still points at the team (owners first), or None when it can be deleted."""
        if self.any(select(Owner.id).where(Owner.team_id == team_id)):
            return "owners"
        if self.any(select(ManagedCertificate.id).where(ManagedCertificate.team_id == team_id)):
            return "certificates"
        return None


class OwnerStore(Store[Owner]):
    model = Owner
    kind = "owner"

    def listing(self, team_id: str | None = None) -> Select[Owner]:
        stmt = select(Owner).order_by(Owner.name, Owner.id)
        return stmt.where(Owner.team_id == team_id) if team_id else stmt

    def referenced(self, owner_id: str) -> bool:
        return self.any(select(ManagedCertificate.id).where(ManagedCertificate.owner_id == owner_id))
