"""Pieces every connector shares after the deployment itself: the post-deploy probe as a hook, and the
`DeployResult` it reports (agent-targets-discovery.md §A2.0, §A2.3).

Connectors that do not write files through one `apply()` (the Caddy admin API) still build an
`ApplyResult` describing what they did, so counters and job reports read the same for every target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from certctl.deploy.connectors.base import ConnectorDeps, DeployResult
from certctl.deploy.errors import DeployError, StepFailed
from certctl.deploy.result import ApplyResult
from certctl.deploy.verify import Endpoint, VerifyPolicy, VerifyResult, certificate_fingerprint, verify_endpoint

log = logging.getLogger("certctl.deploy")


def verify_served(
    endpoint: Endpoint, cert_pem: str, policy: VerifyPolicy, deps: ConnectorDeps, record: list[VerifyResult]
) -> None:
    """Probe `endpoint` until it serves `cert_pem`'s leaf; appends the result to `record`.

    Raises StepFailed (a failed verify step) when it does not, or when the certificate has no fingerprint.
    """
    try:
        expected = certificate_fingerprint(cert_pem)
    except ValueError as exc:
        raise StepFailed(f"cannot fingerprint the deployed certificate: {exc}") from exc
    result = verify_endpoint(endpoint, expected, policy, probe=deps.probe, sleep=deps.sleep)
    record.append(result)
    if not result.verified:
        raise StepFailed(result.describe())


@dataclass(frozen=True, slots=True)
class ResultParts:
    """What a connector knows about one deployment, turned into a DeployResult by `finish`."""

    target_type: str
    deployment_prefix: str  # deployment_id = "<prefix>-<unix seconds>", unless `deployment_id` is set
    target_address: str
    started: float  # time.perf_counter() at the start
    metadata: Mapping[str, str]
    success_message: str  # used when there is no error
    warnings: Sequence[str] = ()
    verification: Sequence[VerifyResult] = ()
    deployment_id: str = ""  # a connector's own identifier (the keystore's SHA-1 thumbprint)


def finish(
    parts: ResultParts, applied: ApplyResult, deps: ConnectorDeps, error: DeployError | None = None
) -> DeployResult:
    """The DeployResult, with `idempotent`, `duration_ms`, `stage`, warnings and the served fingerprint in
    the metadata; logs one `deploy.result` event."""
    now = deps.clock.now()
    metadata = dict(parts.metadata)
    metadata |= {
        "idempotent": "true" if applied.idempotent else "false",
        "duration_ms": str(round((time.perf_counter() - parts.started) * 1000)),
        "stage": applied.stage.value,
    }
    if parts.warnings:
        metadata["warnings"] = "; ".join(parts.warnings)
    verified = parts.verification[-1] if parts.verification else None
    if verified is not None and verified.actual_fingerprint:
        metadata["served_fingerprint"] = verified.actual_fingerprint
    message = str(error) if error is not None else parts.success_message
    if error is None and verified is not None:
        message += f"; {verified.describe()}"
    result = DeployResult(
        parts.target_type,
        applied.outcome,
        applied.stage,
        message,
        parts.deployment_id or f"{parts.deployment_prefix}-{int(now.timestamp())}",
        parts.target_address,
        now if applied.outcome.succeeded else None,
        applied,
        verified,
        tuple(parts.warnings),
        metadata,
        error,
    )
    log.info(
        "deploy.result",
        extra={
            "target_type": parts.target_type,
            "outcome": result.outcome,
            "stage": result.stage,
            "duration_ms": metadata["duration_ms"],
            "error": message if error else "",
        },
    )
    return result
