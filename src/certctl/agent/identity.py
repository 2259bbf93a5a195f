"""Who the agent is: an id and its per-agent credential (core.md §6.1, A4 case 86).

In order: `CERTCTL_AGENT_ID` + `CERTCTL_API_KEY` → the state file (written by an earlier
self-registration) → self-registration with `CERTCTL_AGENT_BOOTSTRAP_TOKEN`, whose answer is stored in
the state file (0600) so that a restart registers nothing.
"""

from __future__ import annotations

import logging

from certctl.agent.client import AgentClient
from certctl.agent.config import AgentSettings
from certctl.agent.errors import AgentConfigError, AgentRetired, BadResponse, ServerRejected, ServerUnreachable
from certctl.agent.protocol import HostInfo
from certctl.agent.state import Credentials, StateFile

log = logging.getLogger("certctl.agent")

REGISTER_HINT = "Register an agent first via POST /api/v1/agents, or set CERTCTL_AGENT_BOOTSTRAP_TOKEN to self-register"


def known_credentials(settings: AgentSettings, state: StateFile) -> Credentials | None:
    """The credential to use, or None when the agent must self-register. Raises AgentConfigError."""
    if settings.agent_id and settings.api_key:
        return Credentials(settings.agent_id, settings.api_key, settings.server_url)
    stored = state.load()
    if stored is not None and (not settings.agent_id or stored.agent_id == settings.agent_id):
        if stored.server_url and stored.server_url != settings.server_url:
            log.warning(
                "agent.state.other_server",
                extra={"state_file": str(state.path), "registered_with": stored.server_url},
            )
        return Credentials(stored.agent_id, settings.api_key or stored.api_key, stored.server_url)
    if settings.bootstrap_token:
        return None
    if settings.agent_id:
        raise AgentConfigError(f"CERTCTL_API_KEY (--api-key) is required for agent {settings.agent_id}")
    if settings.api_key:
        raise AgentConfigError(f"CERTCTL_AGENT_ID (--agent-id) is required. {REGISTER_HINT}")
    raise AgentConfigError(f"CERTCTL_AGENT_ID and CERTCTL_API_KEY are required. {REGISTER_HINT}")


def register(client: AgentClient, settings: AgentSettings, state: StateFile, host: HostInfo) -> Credentials:
    """Self-register with the bootstrap token and store the credential. Raises AgentConfigError."""
    token = settings.bootstrap_token
    if not token:
        raise AgentConfigError(REGISTER_HINT)
    name = settings.agent_name or host.hostname
    try:
        registration = client.register(name, host, token)
    except ServerRejected as exc:
        raise AgentConfigError(_registration_problem(exc, name)) from exc
    except (ServerUnreachable, BadResponse, AgentRetired) as exc:
        raise AgentConfigError(f"self-registration failed: {exc}") from exc
    credentials = Credentials(registration.id, registration.api_key, settings.server_url)
    try:
        state.save(credentials)
    except OSError as exc:
        raise AgentConfigError(
            f"registered as agent {registration.id}, but writing the state file {state.path} failed "
            f"({exc.strerror or exc}); the credential is lost: rotate it (POST /api/v1/agents/"
            f"{registration.id}/rotate-key) and set CERTCTL_AGENT_ID/CERTCTL_API_KEY"
        ) from exc
    log.info(
        f"registered as agent {registration.id} (name {name}); credential stored in {state.path}",
        extra={"agent_id": registration.id, "state_file": str(state.path)},
    )
    return credentials


def _registration_problem(exc: ServerRejected, name: str) -> str:
    if exc.status_code == 401:
        return f"self-registration refused: the bootstrap token was not accepted ({exc.body})"
    if exc.status_code == 409:
        return (
            f"self-registration refused: an agent named {name!r} already exists; set CERTCTL_AGENT_NAME to a "
            "unique name, or use that agent's CERTCTL_AGENT_ID and CERTCTL_API_KEY"
        )
    return f"self-registration failed: {exc}"
