"""Deployment on the target host (the agent side): the atomic multi-file primitive, its locks and
counters, operator commands, post-deploy TLS verification, and the target connectors.

Never used by the control plane itself; see docs/deploy.md.
"""

from __future__ import annotations

from certctl.deploy.apply import Hooks, apply, validate_staged
from certctl.deploy.commands import CommandOutcome, CommandRunner, OperatorCommand, SubprocessRunner, run_command
from certctl.deploy.errors import (
    CommandFailed,
    DeployError,
    LockTimeout,
    PlanInvalid,
    ReloadFailed,
    RollbackFailed,
    StepFailed,
    TargetConfigError,
    UnsupportedTargetType,
    ValidateFailed,
    ValidateOnlyNotSupported,
    VerifyFailed,
    WriteFailed,
)
from certctl.deploy.locks import TARGET_LOCKS, TargetLocks, locked_paths
from certctl.deploy.metrics import DEPLOY_COUNTERS, CounterSample, DeployCounters
from certctl.deploy.plan import DEFAULT_BACKUP_RETENTION, NO_BACKUPS, FileDefaults, FileRole, Plan, PlannedFile
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage, RollbackOutcome
from certctl.deploy.verify import (
    Endpoint,
    ProbeResult,
    VerifyPolicy,
    VerifyResult,
    VerifyStatus,
    certificate_fingerprint,
    probe_tls,
    verify_endpoint,
)

__all__ = [
    "DEFAULT_BACKUP_RETENTION",
    "DEPLOY_COUNTERS",
    "NO_BACKUPS",
    "TARGET_LOCKS",
    "ApplyResult",
    "CommandFailed",
    "CommandOutcome",
    "CommandRunner",
    "CounterSample",
    "DeployCounters",
    "DeployError",
    "DeployOutcome",
    "DeployStage",
    "Endpoint",
    "FileDefaults",
    "FileRole",
    "Hooks",
    "LockTimeout",
    "OperatorCommand",
    "Plan",
    "PlanInvalid",
    "PlannedFile",
    "ProbeResult",
    "ReloadFailed",
    "RollbackFailed",
    "RollbackOutcome",
    "StepFailed",
    "SubprocessRunner",
    "TargetConfigError",
    "TargetLocks",
    "UnsupportedTargetType",
    "ValidateFailed",
    "ValidateOnlyNotSupported",
    "VerifyFailed",
    "VerifyPolicy",
    "VerifyResult",
    "VerifyStatus",
    "WriteFailed",
    "apply",
    "certificate_fingerprint",
    "locked_paths",
    "probe_tls",
    "run_command",
    "validate_staged",
    "verify_endpoint",
]
