"""Who may do what: the roles an API key carries (core.md §13.1)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    AUDITOR = "auditor"

    @property
    def can_write(self) -> bool:
        return self in (Role.ADMIN, Role.OPERATOR)

    @property
    def is_admin(self) -> bool:
        return self is Role.ADMIN


class ActorType(StrEnum):
    USER = "User"
    SYSTEM = "System"
    AGENT = "Agent"


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated identity behind a request: its name is what the audit trail records."""

    name: str
    role: Role
    actor_type: ActorType = ActorType.USER

    @property
    def is_admin(self) -> bool:
        return self.role.is_admin


SYSTEM_ACTOR = Actor(name="system", role=Role.ADMIN, actor_type=ActorType.SYSTEM)
# AUTH_TYPE=none: pass-through identity, never admin (as the original).
ANONYMOUS_ACTOR = Actor(name="anonymous", role=Role.OPERATOR)
