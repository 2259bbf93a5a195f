"""What can go wrong between the agent and the control plane, one class per way the agent reacts."""

from __future__ import annotations

from certctl.errors import CertctlError, ConfigurationError


class AgentConfigError(ConfigurationError):
    """A setting the agent cannot start with; the message names the flag or variable."""


class AgentError(CertctlError):
    """Base of the errors the agent's client raises."""


class ServerUnreachable(AgentError):
    """No HTTP answer: DNS, TCP, TLS or timeout. Counts as a failure; the request may be retried."""


class ServerRejected(AgentError):
    """The server answered with an unexpected status; `status_code` and `body` (trimmed) say which."""

    def __init__(self, what: str, status_code: int, body: str) -> None:
        super().__init__(f"{what}: server returned {status_code}: {body}")
        self.what, self.status_code, self.body = what, status_code, body

    @property
    def permanent(self) -> bool:
        """A 4xx: sending the same request again cannot succeed."""
        return 400 <= self.status_code < 500


class StaleJob(ServerRejected):
    """409 on a job status report: the job is no longer Running (cancelled, reaped). Drop it."""


class BadResponse(AgentError):
    """A 2xx whose body is not the JSON the protocol promises."""


class AgentRetired(AgentError):
    """410 Gone: an operator retired this agent. The process exits 0 so that nothing restarts it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason or "agent retired by control plane")
        self.reason = reason
