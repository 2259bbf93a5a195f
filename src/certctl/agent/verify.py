"""Agent-level post-deploy verification: one result per deployment, failures included (§A1.10, decision k).

Endpoint, in this order: the connector's own `post_deploy_verify` result (already probed, with
rollback) → a `verify_endpoint` key (`host:port`) in the target config → `host`/`hostname`/`target`/
`address` + `port` (a JSON number, default 443), only for connector types whose host is the serving
endpoint. No endpoint → nothing is reported (the server marks the deployment `skipped`).

The probe waits `CERTCTL_VERIFY_DELAY`, then compares the served leaf's SHA-256 with the deployed one,
up to three times (1 s, then 2 s apart): right after a reload an old worker may still answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from certctl.deploy.connectors import DeployResult
from certctl.deploy.verify import (
    DEFAULT_PORT,
    Endpoint,
    TLSProber,
    VerifyPolicy,
    VerifyResult,
    probe_tls,
    verify_endpoint,
)

log = logging.getLogger("certctl.agent")

HOST_KEYS = ("host", "hostname", "target", "address")
# Their `host` is a management, SSH or API host, not where the certificate is served.
NOT_SERVING_TYPES = frozenset(
    {"F5", "SSH", "IIS", "AWSACM", "AzureKeyVault", "KubernetesSecrets", "WinCertStore", "JavaKeystore"}
)
AGENT_VERIFY_ATTEMPTS = 3
AGENT_VERIFY_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The body of `POST /api/v1/jobs/{job_id}/verify`."""

    target_id: str
    expected_fingerprint: str
    actual_fingerprint: str
    verified: bool
    error: str = ""

    @classmethod
    def from_result(cls, target_id: str, result: VerifyResult) -> VerifyReport:
        error = "" if result.verified else result.describe()
        return cls(target_id, result.expected_fingerprint, result.actual_fingerprint, result.verified, error)

    def as_json(self) -> dict[str, Any]:
        return {
            "target_id": self.target_id,
            "expected_fingerprint": self.expected_fingerprint,
            "actual_fingerprint": self.actual_fingerprint,
            "verified": self.verified,
            "error": self.error,
        }


def config_object(config: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    """The target config as a mapping; raises ValueError for JSON that is not an object."""
    if config is None:
        return {}
    if isinstance(config, str):
        if not config.strip():
            return {}
        try:
            parsed = json.loads(config)
        except ValueError as exc:
            raise ValueError(f"target config is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError("target config is not a JSON object")
        return parsed
    return config


def host_and_port(config: Mapping[str, Any] | str | None) -> Endpoint:
    """The first non-empty of host/hostname/target/address, and `port` (a number, default 443).

    Raises ValueError: invalid JSON, no host, a port that is not a number or outside 1-65535.
    """
    values = config_object(config)
    host = next((v.strip() for k in HOST_KEYS if isinstance(v := values.get(k), str) and v.strip()), "")
    if not host:
        raise ValueError(f"target config has none of {', '.join(HOST_KEYS)}")
    port = values.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int | float) or port != int(port):
        raise ValueError(f"target config port {port!r} is not a number")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"target config port {int(port)} is outside 1-65535")
    return Endpoint(host, int(port))


def agent_endpoint(target_type: str, config: Mapping[str, Any] | str | None) -> Endpoint | None:
    """Where the agent probes, or None (nothing configured). Raises ValueError for a malformed value."""
    values = config_object(config)
    explicit = values.get("verify_endpoint")
    if isinstance(explicit, str) and explicit.strip():
        return Endpoint.parse(explicit)
    if target_type in NOT_SERVING_TYPES or not any(isinstance(values.get(k), str) and values[k] for k in HOST_KEYS):
        return None
    return host_and_port(values)


class AgentVerifier:
    """Probes after a deployment; `sleep` is injected so tests never wait."""

    def __init__(
        self,
        *,
        delay_seconds: float,
        timeout_seconds: float,
        probe: TLSProber = probe_tls,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._delay, self._sleep, self._probe = delay_seconds, sleep, probe
        self._policy = VerifyPolicy(
            attempts=AGENT_VERIFY_ATTEMPTS,
            initial_backoff_seconds=AGENT_VERIFY_BACKOFF_SECONDS,
            max_backoff_seconds=AGENT_VERIFY_BACKOFF_SECONDS * 2,
            timeout_seconds=timeout_seconds,
        )

    @property
    def timeout_seconds(self) -> float:
        return self._policy.timeout_seconds

    def verify(
        self,
        target_id: str | None,
        target_type: str,
        config: Mapping[str, Any] | str | None,
        expected_fingerprint: str,
        deployed: DeployResult | None,
    ) -> VerifyReport | None:
        """The report to send, or None (no target id, or no endpoint). Never raises for network errors."""
        if not target_id:
            return None
        if deployed is not None and deployed.verification is not None:
            return VerifyReport.from_result(target_id, deployed.verification)  # the connector already probed
        try:
            endpoint = agent_endpoint(target_type, config)
        except ValueError as exc:
            log.warning("agent.verify.skipped", extra={"target_id": target_id, "reason": str(exc)})
            return None
        if endpoint is None:
            log.info("agent.verify.skipped", extra={"target_id": target_id, "reason": "no endpoint configured"})
            return None
        if self._delay > 0:
            self._sleep(self._delay)
        result = verify_endpoint(endpoint, expected_fingerprint, self._policy, probe=self._probe, sleep=self._sleep)
        return VerifyReport.from_result(target_id, result)
