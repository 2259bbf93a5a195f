from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from certctl.agent_groups.membership import Membership, MembershipType
from certctl.agents.schemas import AgentOut
from certctl.api.schemas import ClientId, Name, StrictIn

# The columns are VARCHAR(64); the service checks what the text means (core.md §2.6).
Criterion = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
AgentId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

# A null criterion or description means "none", as an absent one does in the original's Go structs.
NULLABLE = frozenset({"description", "match_os", "match_architecture", "match_ip_cidr", "match_version"})

_OS = "agent OS, case-insensitive; aliases fold (macos = darwin)"
_ARCH = "agent architecture, case-insensitive; aliases fold (x86_64 = amd64, aarch64 = arm64)"
_CIDR = "network the agent's IP must lie in (IPv4 or IPv6; a bare address is /32 or /128)"
_VERSION = "exact version (2.0.14), '*' pattern (2.0.*) or comparisons (>=1.2.0,<2); see docs/agent-groups.md"


class AgentGroupIn(StrictIn):
    id: ClientId | None = Field(default=None, description="optional; generated as ag-… when omitted")
    name: Name
    description: str | None = Field(default="", max_length=4096)
    match_os: Criterion | None = Field(default="", description=_OS)
    match_architecture: Criterion | None = Field(default="", description=_ARCH)
    match_ip_cidr: Criterion | None = Field(default="", description=_CIDR)
    match_version: Criterion | None = Field(default="", description=_VERSION)
    enabled: bool = True


class AgentGroupUpdate(StrictIn):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=4096)
    match_os: Criterion | None = Field(default=None, description=_OS)
    match_architecture: Criterion | None = Field(default=None, description=_ARCH)
    match_ip_cidr: Criterion | None = Field(default=None, description=_CIDR)
    match_version: Criterion | None = Field(default=None, description=_VERSION)
    enabled: bool | None = None


class AgentGroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    match_os: str
    match_architecture: str
    match_ip_cidr: str
    match_version: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AgentGroupMemberOut(AgentOut):
    """An agent as the agents API shows it (never its credential), and why it is listed."""

    membership: Membership = Field(description="dynamic: matched by the criteria; include: added by hand")


class MemberIn(StrictIn):
    agent_id: AgentId
    membership_type: MembershipType = MembershipType.INCLUDE


class MembershipTypeIn(StrictIn):
    membership_type: MembershipType


class MemberRowOut(BaseModel):
    """One manual row of `agent_group_members`."""

    model_config = ConfigDict(from_attributes=True)

    agent_group_id: str
    agent_id: str
    membership_type: MembershipType
