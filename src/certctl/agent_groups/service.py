"""Agent groups: CRUD with criteria validated on write, evaluated membership, and manual include and
exclude rows, every change in the audit trail (core.md §2.6, agent-targets-discovery.md §A1.12)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from certctl.agent_groups.matching import GroupRules, InvalidCriterion
from certctl.agent_groups.membership import Membership, MembershipType, evaluate
from certctl.agent_groups.store import AgentFactsRow, AgentGroupStore
from certctl.agents.models import Agent, AgentGroup, AgentGroupMember
from certctl.audit.service import AuditRecorder
from certctl.clock import Clock
from certctl.db.engine import Database
from certctl.db.store import Page, PageRequest
from certctl.errors import AlreadyExists, Conflict, NotFound, ValidationFailed
from certctl.ids import new_id
from certctl.security.roles import Actor

RESOURCE_TYPE = "agent_group"
CRITERIA = ("match_os", "match_architecture", "match_ip_cidr", "match_version")


@dataclass(frozen=True, slots=True)
class AgentGroupSpec:
    name: str
    description: str = ""
    match_os: str = ""
    match_architecture: str = ""
    match_ip_cidr: str = ""
    match_version: str = ""
    enabled: bool = True
    id: str | None = None


@dataclass(frozen=True, slots=True)
class GroupMember:
    agent: Agent
    membership: Membership


class AgentGroupService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def list(self, request: PageRequest) -> Page[AgentGroup]:
        with self._db.read() as session:
            store = AgentGroupStore(session)
            return store.paginate(store.listing(), request)

    def get(self, group_id: str) -> AgentGroup:
        with self._db.read() as session:
            return AgentGroupStore(session).get(group_id)

    def create(self, spec: AgentGroupSpec, actor: Actor) -> AgentGroup:
        """Raises ValidationFailed (a criterion that does not parse), AlreadyExists (name) or Conflict (id)."""
        criteria = {name: getattr(spec, name).strip() for name in CRITERIA}
        _check_criteria(criteria)
        now = self._clock.now()
        with self._db.begin() as session:
            store = AgentGroupStore(session)
            group_id = spec.id or new_id("ag")
            if store.find(group_id) is not None:
                raise Conflict(f"agent group {group_id} already exists")
            if store.name_taken(spec.name):
                raise AlreadyExists("agent group", "name", spec.name)
            group = store.add(
                AgentGroup(
                    id=group_id,
                    name=spec.name,
                    description=spec.description,
                    enabled=spec.enabled,
                    created_at=now,
                    updated_at=now,
                    **criteria,
                )
            )
            AuditRecorder(session, self._clock).record(
                actor, "agent_group_created", RESOURCE_TYPE, group.id, {"group_name": group.name, **criteria}
            )
            return group

    def update(self, group_id: str, changes: Mapping[str, Any], actor: Actor) -> AgentGroup:
        """Partial update; only the criteria given are checked, so a group stored before validation existed
        can still be renamed. Raises NotFound, ValidationFailed, AlreadyExists."""
        changes = {name: value.strip() if name in CRITERIA else value for name, value in changes.items()}
        _check_criteria({name: value for name, value in changes.items() if name in CRITERIA})
        with self._db.begin() as session:
            store = AgentGroupStore(session)
            group = store.get(group_id)
            if "name" in changes and store.name_taken(changes["name"], except_id=group_id):
                raise AlreadyExists("agent group", "name", changes["name"])
            for name, value in changes.items():
                setattr(group, name, value)
            group.updated_at = self._clock.now()
            store.flush()
            # "name" alone reads as personal data to the redactor (audit/redaction.py): say whose name it is.
            logged = {"group_name" if name == "name" else name: value for name, value in changes.items()}
            AuditRecorder(session, self._clock).record(
                actor, "agent_group_updated", RESOURCE_TYPE, group.id, {"changes": logged}
            )
            return group

    def delete(self, group_id: str, actor: Actor) -> None:
        """Manual rows go with the group; renewal policies pointing at it keep working, unlinked (FK SET NULL)."""
        with self._db.begin() as session:
            store = AgentGroupStore(session)
            group = store.get(group_id)
            store.delete(group)
            AuditRecorder(session, self._clock).record(
                actor, "agent_group_deleted", RESOURCE_TYPE, group_id, {"group_name": group.name}
            )

    def members(self, group_id: str, request: PageRequest, only: Membership | None = None) -> Page[GroupMember]:
        """The evaluated members, by agent name; `only=EXCLUDE` lists the agents kept out by hand instead."""
        with self._db.read() as session:
            store = AgentGroupStore(session)
            group = store.get(group_id)
            listed = _listed(store, group, only)
            listed.sort(key=lambda pair: (pair[0].name.casefold(), pair[0].id))
            window = listed[request.offset : request.offset + request.per_page]
            agents = {agent.id: agent for agent in store.agents([facts.id for facts, _ in window])}
            items = [GroupMember(agents[facts.id], membership) for facts, membership in window if facts.id in agents]
            return Page(items=items, total=len(listed), page=request.page, per_page=request.per_page)

    def member_ids(self, group_id: str) -> dict[str, Membership]:
        """Agent id → membership of every member: what other features ask when they act on a group."""
        with self._db.read() as session:
            store = AgentGroupStore(session)
            return {facts.id: membership for facts, membership in _listed(store, store.get(group_id), None)}

    def add_member(
        self, group_id: str, agent_id: str, membership_type: MembershipType, actor: Actor
    ) -> AgentGroupMember:
        """A new manual row. Raises NotFound (group or agent), ValidationFailed (including a retired agent)
        or AlreadyExists (the agent already has a row in this group: change it with `set_member`)."""
        with self._db.begin() as session:
            store = AgentGroupStore(session)
            _check_member(store, group_id, agent_id, membership_type)
            if store.member_row(group_id, agent_id) is not None:
                raise AlreadyExists(f"agent group {group_id} member", "agent_id", agent_id)
            row = store.add_member_row(
                AgentGroupMember(agent_group_id=group_id, agent_id=agent_id, membership_type=membership_type.value)
            )
            self._record_member(session, actor, "agent_group_member_added", row)
            return row

    def set_member(
        self, group_id: str, agent_id: str, membership_type: MembershipType, actor: Actor
    ) -> tuple[AgentGroupMember, bool]:
        """Create or replace the agent's manual row; True when it was created."""
        with self._db.begin() as session:
            store = AgentGroupStore(session)
            _check_member(store, group_id, agent_id, membership_type)
            row = store.member_row(group_id, agent_id)
            if row is None:
                row = store.add_member_row(
                    AgentGroupMember(agent_group_id=group_id, agent_id=agent_id, membership_type=membership_type.value)
                )
                self._record_member(session, actor, "agent_group_member_added", row)
                return row, True
            if row.membership_type != membership_type.value:
                previous = row.membership_type
                row.membership_type = membership_type.value
                store.flush()
                self._record_member(session, actor, "agent_group_member_changed", row, previous=previous)
            return row, False

    def remove_member(self, group_id: str, agent_id: str, actor: Actor) -> None:
        """Drop the agent's manual row (an include or an exclude). Raises NotFound when there is none:
        a member by the rules alone is kept out with an exclude, not removed."""
        with self._db.begin() as session:
            store = AgentGroupStore(session)
            store.get(group_id)
            row = store.member_row(group_id, agent_id)
            if row is None:
                raise NotFound(f"manual member of agent group {group_id}:", agent_id)
            store.delete_member_row(row)
            self._record_member(session, actor, "agent_group_member_removed", row)

    def _record_member(
        self, session: Session, actor: Actor, action: str, row: AgentGroupMember, previous: str | None = None
    ) -> None:
        details = {"agent_id": row.agent_id, "membership_type": row.membership_type}
        if previous is not None:
            details["previous_membership_type"] = previous
        AuditRecorder(session, self._clock).record(actor, action, RESOURCE_TYPE, row.agent_group_id, details)


def _check_criteria(criteria: Mapping[str, str]) -> None:
    try:
        GroupRules.parse(
            os=criteria.get("match_os", ""),
            architecture=criteria.get("match_architecture", ""),
            ip_cidr=criteria.get("match_ip_cidr", ""),
            version=criteria.get("match_version", ""),
        )
    except InvalidCriterion as exc:
        raise ValidationFailed(str(exc)) from exc


def _check_member(store: AgentGroupStore, group_id: str, agent_id: str, membership_type: MembershipType) -> None:
    store.get(group_id)
    agent = store.agent(agent_id)
    if agent is None:
        raise NotFound("agent", agent_id)
    if agent.retired_at is not None and membership_type is MembershipType.INCLUDE:
        raise ValidationFailed(f"agent {agent_id} is retired; a retired agent cannot be included in a group")


def _listed(
    store: AgentGroupStore, group: AgentGroup, only: Membership | None
) -> list[tuple[AgentFactsRow, Membership]]:
    manual = store.manual(group.id)
    if only is Membership.EXCLUDE:
        return [
            (facts, Membership.EXCLUDE)
            for facts in store.manual_agent_facts(group.id)
            if facts.retired_at is None and manual.get(facts.id) == MembershipType.EXCLUDE
        ]
    rules = GroupRules.stored(
        os=group.match_os,
        architecture=group.match_architecture,
        ip_cidr=group.match_ip_cidr,
        version=group.match_version,
    )
    # Only a rule-bearing enabled group needs the whole fleet; otherwise the manual rows say it all.
    dynamic = group.enabled and rules.is_dynamic
    population = store.active_agent_facts() if dynamic else store.manual_agent_facts(group.id)
    facts_by_id = {facts.id: facts for facts in population}
    members = evaluate(rules, group.enabled, population, manual)
    return [
        (facts_by_id[agent_id], membership)
        for agent_id, membership in members.items()
        if only is None or membership is only
    ]
