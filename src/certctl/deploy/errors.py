"""The deploy error tree (agent-targets-discovery.md §A2.1): one root, one class per step that failed.

`apply()` raises exactly one of PlanInvalid, WriteFailed, LockTimeout, ValidateFailed, ReloadFailed,
VerifyFailed or RollbackFailed, with `result` describing what was done before it stopped. Hooks signal
a failed step with StepFailed (CommandFailed for commands), which `apply()` chains as the cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certctl.errors import CertctlError, ValidationFailed

if TYPE_CHECKING:
    from certctl.deploy.result import ApplyResult


class DeployError(CertctlError):
    """Base of every deployment error; `result` is filled once the primitive has started."""

    def __init__(self, message: str, *, result: ApplyResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class PlanInvalid(DeployError):
    """No files, an empty or duplicate path, an unknown owner: refused before any I/O."""


class LockTimeout(DeployError):
    """Another deployment (thread or process) held a destination's lock for too long."""


class WriteFailed(DeployError):
    """Staging, backing up or renaming a file failed; live files were left or put back as they were."""


class ValidateFailed(DeployError):
    """The pre-check or the validate command refused the new files; live files are the previous ones."""


class ReloadFailed(DeployError):
    """The reload failed; the previous files were restored and reloaded (`result.rolled_back`)."""


class VerifyFailed(DeployError):
    """The endpoint did not serve the new certificate; the previous files were restored and reloaded."""


class RollbackFailed(DeployError):
    """A step failed and so did putting the previous state back: an operator must look (backups kept)."""


class ValidateOnlyNotSupported(DeployError):
    """The connector has nothing to dry-run (no validate command)."""


class StepFailed(DeployError):
    """Raised by a hook (validate, reload, verify) to say its step failed; the message is the reason."""


class CommandFailed(StepFailed):
    """An operator command exited non-zero, timed out or could not start; `output` is its stdout+stderr."""

    def __init__(self, message: str, *, returncode: int | None, output: str) -> None:
        super().__init__(message)
        self.returncode, self.output = returncode, output


class TargetConfigError(ValidationFailed, ValueError):
    """A target config is malformed or incomplete; `field` names the offending key (dotted when nested)."""

    def __init__(self, target_type: str, field: str, problem: str) -> None:
        super().__init__(
            f"invalid {target_type} config: {field}: {problem}" if field else f"invalid {target_type} config: {problem}"
        )
        self.target_type, self.field, self.problem = target_type, field, problem


class UnsupportedTargetType(ValidationFailed, ValueError):
    def __init__(self, target_type: str) -> None:
        super().__init__(f"unsupported target type: {target_type}")
        self.target_type = target_type
