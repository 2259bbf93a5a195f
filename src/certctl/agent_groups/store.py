"""Queries for agent groups and their manual member rows. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select

from certctl.agent_groups.membership import MembershipType
from certctl.agents.models import Agent, AgentGroup, AgentGroupMember
from certctl.db.store import Store


@dataclass(frozen=True, slots=True)
class AgentFactsRow:
    """The columns membership is decided on, without loading whole agent rows."""

    id: str
    name: str
    os: str
    architecture: str
    ip_address: str
    version: str
    retired_at: datetime | None


_FACT_COLUMNS = (
    Agent.id,
    Agent.name,
    Agent.os,
    Agent.architecture,
    Agent.ip_address,
    Agent.version,
    Agent.retired_at,
)


class AgentGroupStore(Store[AgentGroup]):
    model = AgentGroup
    kind = "agent group"

    def listing(self) -> Select[AgentGroup]:
        return select(AgentGroup).order_by(AgentGroup.name, AgentGroup.id)

    def name_taken(self, name: str, except_id: str | None = None) -> bool:
        return self.any(select(AgentGroup.id).where(AgentGroup.name == name, AgentGroup.id != (except_id or "")))

    def manual(self, group_id: str) -> dict[str, MembershipType]:
        """Agent id → include/exclude for the group's manual rows."""
        rows = self.session.execute(
            select(AgentGroupMember.agent_id, AgentGroupMember.membership_type).where(
                AgentGroupMember.agent_group_id == group_id
            )
        )
        # A type other than include/exclude (hand-edited data) counts as no row at all.
        known = {member.value: member for member in MembershipType}
        return {agent_id: known[kind] for agent_id, kind in rows if kind in known}

    def member_row(self, group_id: str, agent_id: str) -> AgentGroupMember | None:
        return self.session.get(AgentGroupMember, (group_id, agent_id))

    def add_member_row(self, row: AgentGroupMember) -> AgentGroupMember:
        self.session.add(row)
        self.flush()
        return row

    def delete_member_row(self, row: AgentGroupMember) -> None:
        self.session.delete(row)
        self.flush()

    def active_agent_facts(self) -> list[AgentFactsRow]:
        """Every agent that is not retired: the population the rules are applied to."""
        stmt = select(*_FACT_COLUMNS).where(Agent.retired_at.is_(None))
        return [AgentFactsRow(*row) for row in self.session.execute(stmt)]

    def manual_agent_facts(self, group_id: str) -> list[AgentFactsRow]:
        """The agents named by the group's manual rows, retired or not."""
        stmt = (
            select(*_FACT_COLUMNS)
            .join(AgentGroupMember, AgentGroupMember.agent_id == Agent.id)
            .where(AgentGroupMember.agent_group_id == group_id)
        )
        return [AgentFactsRow(*row) for row in self.session.execute(stmt)]

    def agents(self, agent_ids: Collection[str]) -> Sequence[Agent]:
        if not agent_ids:
            return []
        return self.session.scalars(select(Agent).where(Agent.id.in_(agent_ids))).all()

    def agent(self, agent_id: str) -> Agent | None:
        return self.session.get(Agent, agent_id)
