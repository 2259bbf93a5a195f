"""What a deployment did: its outcome, the stage it reached, and where the time went."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class DeployOutcome(StrEnum):
    SUCCESS = "success"
    UNCHANGED = "unchanged"  # every file already held the new bytes: nothing written, nothing reloaded
    FAILED = "failed"  # stopped before any live file changed
    ROLLED_BACK = "rolled_back"  # failed after the swap; the previous files are back (and reloaded)
    ROLLBACK_FAILED = "rollback_failed"  # failed, and restoring failed too: operator action needed

    @property
    def succeeded(self) -> bool:
        return self in (DeployOutcome.SUCCESS, DeployOutcome.UNCHANGED)


class DeployStage(StrEnum):
    """The step a deployment stopped at (or `done`); reported as `result.stage` (core.md §6.5)."""

    PLAN = "plan"
    LOCK = "lock"
    PRECHECK = "precheck"
    WRITE = "write"
    VALIDATE = "validate"
    BACKUP = "backup"
    SWAP = "swap"
    RELOAD = "reload"
    VERIFY = "verify"
    DONE = "done"


class RollbackOutcome(StrEnum):
    RESTORED = "restored"
    ALSO_FAILED = "also_failed"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """One run of `apply()`. Times are seconds; `timings` has one entry per step that ran."""

    outcome: DeployOutcome
    stage: DeployStage
    backup_paths: Mapping[Path, Path | None] = field(default_factory=dict)  # final path → backup ("" when new)
    validate_ok: bool | None = None  # None: no validate step configured
    reloaded: bool = False
    rollback: RollbackOutcome | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    duration_seconds: float = 0.0
    error: str = ""

    @property
    def idempotent(self) -> bool:
        return self.outcome is DeployOutcome.UNCHANGED

    @property
    def rolled_back(self) -> bool:
        return self.rollback is RollbackOutcome.RESTORED

    @classmethod
    def stopped(cls, stage: DeployStage, error: str, duration_seconds: float = 0.0) -> ApplyResult:
        """A deployment refused before the primitive touched any file (bad plan, pre-check)."""
        return cls(
            DeployOutcome.FAILED,
            stage,
            validate_ok=False if stage in (DeployStage.PRECHECK, DeployStage.VALIDATE) else None,
            duration_seconds=duration_seconds,
            error=error,
        )
