"""What every target connector takes and returns (agent-targets-discovery.md §A2.0, core.md §6.5)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from certctl.clock import Clock, SystemClock
from certctl.deploy.commands import DEFAULT_COMMAND_TIMEOUT_SECONDS, CommandRunner, SubprocessRunner
from certctl.deploy.errors import DeployError
from certctl.deploy.locks import TARGET_LOCKS, TargetLocks
from certctl.deploy.metrics import DEPLOY_COUNTERS, DeployCounters
from certctl.deploy.plan import DEFAULT_BACKUP_RETENTION
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage
from certctl.deploy.verify import TLSProber, VerifyResult, probe_tls


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """The material to deploy. `cert_pem` is the leaf; `chain_pem` the intermediates (may be empty)."""

    cert_pem: str
    chain_pem: str = ""
    key_pem: str | None = field(default=None, repr=False)
    target_id: str | None = None  # the per-target mutex key (§A1.9); None → no mutex
    metadata: Mapping[str, str] = field(default_factory=dict)  # certificate_id, job_id


@dataclass(frozen=True, slots=True)
class DeployResult:
    """The outcome of one `deploy()`; `as_report()` is the `result` the agent sends (core.md §6.5)."""

    target_type: str
    outcome: DeployOutcome
    stage: DeployStage
    message: str
    deployment_id: str = ""
    target_address: str = ""
    deployed_at: datetime | None = None
    applied: ApplyResult | None = None
    verification: VerifyResult | None = None
    warnings: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    error: DeployError | None = None

    @property
    def success(self) -> bool:
        return self.outcome.succeeded

    @property
    def idempotent(self) -> bool:
        return self.outcome is DeployOutcome.UNCHANGED

    def raise_for_error(self) -> None:
        """Raise the deployment's error, if it failed."""
        if self.error is not None:
            raise self.error

    def as_report(self) -> dict[str, object]:
        applied = self.applied
        return {
            "stage": self.stage.value,
            "idempotent": self.idempotent,
            "validate_ok": applied.validate_ok if applied else None,
            "reloaded": applied.reloaded if applied else False,
            "rolled_back": applied.rolled_back if applied else False,
            "rollback_outcome": applied.rollback.value if applied and applied.rollback else None,
            "post_verify_failed": self.verification is not None and not self.verification.verified,
            "duration_ms": int(self.metadata.get("duration_ms", "0")),
            "target_address": self.target_address,
            "deployment_id": self.deployment_id,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class CheckItem:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """ "Test target": can the agent write the files and does the validate command pass?"""

    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)


@dataclass(frozen=True, slots=True)
class ConnectorDeps:
    """What connectors are handed instead of reaching for globals; tests swap the runner or the probe."""

    runner: CommandRunner = field(default_factory=SubprocessRunner)
    probe: TLSProber = probe_tls
    counters: DeployCounters = DEPLOY_COUNTERS
    target_locks: TargetLocks = TARGET_LOCKS
    clock: Clock = field(default_factory=SystemClock)
    sleep: Callable[[float], None] = time.sleep
    default_backup_retention: int = DEFAULT_BACKUP_RETENTION  # CERTCTL_DEPLOY_BACKUP_RETENTION
    default_command_timeout_seconds: float = DEFAULT_COMMAND_TIMEOUT_SECONDS
    # Only tests turn the key/certificate pre-check off, to let a server's own validation see a bad
    # pair (acceptance case 78).
    precheck: bool = True
    # False on the control plane: it validates configs for a host it cannot see, so checks of the host's
    # own state (directories exist, are writable) wait for the agent.
    host_checks: bool = True


class TargetConnector(Protocol):
    """A deployment target. Build it from a raw config, then `validate_config()` before anything else."""

    target_type: ClassVar[str]

    def validate_config(self) -> None:
        """Raises TargetConfigError naming the field (required keys, paths, the command injection guard)."""
        ...

    def deploy(self, request: DeployRequest) -> DeployResult:
        """Deploy and report; failures are in the result (`error`, `outcome`), not raised.

        Raises TargetConfigError when the config does not validate.
        """
        ...

    def validate_only(self, request: DeployRequest) -> None:
        """Dry run of the validate step; raises ValidateFailed, or ValidateOnlyNotSupported."""
        ...

    def test(self) -> TargetCheck:
        """Check the target without deploying: directories writable, validate command passing."""
        ...
