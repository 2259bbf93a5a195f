from __future__ import annotations

from sqlalchemy import Select, select

from certctl.agents.models import Agent
from certctl.db.store import Store
from certctl.targets.models import DeploymentTarget, TargetType


class TargetStore(Store[DeploymentTarget]):
    model = DeploymentTarget
    kind = "target"

    def listing(self, agent_id: str | None = None, target_type: TargetType | None = None) -> Select[DeploymentTarget]:
        stmt = select(DeploymentTarget).order_by(DeploymentTarget.name, DeploymentTarget.id)
        if agent_id is not None:
            stmt = stmt.where(DeploymentTarget.agent_id == agent_id)
        if target_type is not None:
            stmt = stmt.where(DeploymentTarget.type == target_type)
        return stmt

    def name_taken(self, agent_id: str, name: str, except_id: str | None = None) -> bool:
        """Target names are unique per agent."""
        return self.any(
            select(DeploymentTarget.id).where(
                DeploymentTarget.agent_id == agent_id,
                DeploymentTarget.name == name,
                DeploymentTarget.id != (except_id or ""),
            )
        )

    def agent(self, agent_id: str) -> Agent | None:
        return self.session.get(Agent, agent_id)
