"""Where agent credentials and the bootstrap token may go (core.md §6.1).

A per-agent credential reaches only its own agent routes and the verification report; the bootstrap
token only self-registration. Everything else answers 403 before any handler runs.
"""

from __future__ import annotations

import hmac
import re

from certctl.security.roles import Actor, ActorType, Role

BOOTSTRAP_ACTOR = Actor(name="agent-bootstrap", role=Role.OPERATOR, actor_type=ActorType.SYSTEM)
_VERIFY_PATH = re.compile(r"^/api/v1/jobs/[^/]+/verify$")
REGISTRATION_PATH = "/api/v1/agents"


def bootstrap_actor(presented: str, token: str) -> Actor | None:
    """The bootstrap actor when `presented` is the configured token (constant-time), else None."""
    if token and hmac.compare_digest(presented.encode(), token.encode()):
        return BOOTSTRAP_ACTOR
    return None


def refusal(actor: Actor, method: str, path: str) -> str | None:
    """Why `actor` may not call `method path`, or None when it may."""
    if actor.actor_type is ActorType.AGENT:
        own_route = path.startswith(f"/api/v1/agents/{actor.name}/")
        if own_route or (method == "POST" and _VERIFY_PATH.fullmatch(path)):
            return None
        return "an agent credential can call only that agent's own routes"
    if actor is BOOTSTRAP_ACTOR and not (method == "POST" and path.rstrip("/") == REGISTRATION_PATH):
        return "the bootstrap token can only register an agent (POST /api/v1/agents)"
    return None
