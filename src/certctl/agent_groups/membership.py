"""Who is in a group: manual rows and dynamic rules combined (core.md §2.6). Pure, no database.

    members = (dynamic matches, when the group is enabled) + manual includes - manual excludes

An exclude always wins; a retired agent is never a member; a disabled group keeps only its manual
includes (the rules are switched off, the hand-picked list is not). An agent both included and matched
is reported as `include`: the explicit choice is the one an operator has to undo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from certctl.agent_groups.matching import AgentFacts, GroupRules
from certctl.agents.credentials import SENTINEL_AGENT_IDS


class MembershipType(StrEnum):
    """A manual row in `agent_group_members`."""

    INCLUDE = "include"
    EXCLUDE = "exclude"


class Membership(StrEnum):
    """Why an agent is listed under a group."""

    DYNAMIC = "dynamic"  # matched by the group's criteria
    INCLUDE = "include"  # added by hand
    EXCLUDE = "exclude"  # kept out by hand (listed only when asked for)


class Candidate(AgentFacts, Protocol):
    @property
    def id(self) -> str: ...
    @property
    def retired_at(self) -> datetime | None: ...


def evaluate(
    rules: GroupRules,
    enabled: bool,
    agents: Iterable[Candidate],
    manual: Mapping[str, MembershipType],
) -> dict[str, Membership]:
    """Agent id → membership for every member among `agents` (which must hold every manually included
    agent as well as every agent the rules should look at)."""
    members: dict[str, Membership] = {}
    for agent in agents:
        if agent.retired_at is not None:
            continue
        row = manual.get(agent.id)
        if row == MembershipType.EXCLUDE:
            continue
        if row == MembershipType.INCLUDE:
            members[agent.id] = Membership.INCLUDE
        elif enabled and agent.id not in SENTINEL_AGENT_IDS and rules.matches(agent):
            # The built-in server-side agents (scanner, cloud discovery) deploy nothing: rules skip them.
            members[agent.id] = Membership.DYNAMIC
    return members
