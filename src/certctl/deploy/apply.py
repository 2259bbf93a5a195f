"""`apply(plan)`: put several files in place all-or-nothing, then validate, reload and verify, rolling
back on any failure after the swap (agent-targets-discovery.md §A2.1, decision p).

Order of one run, under the lock of every destination:

1. every file already holds its new bytes (SHA-256) and `force` is off → `unchanged`, nothing else;
2. stat existing files and resolve modes and owners (unknown owner → PlanInvalid, nothing written);
3. write each file to a same-directory temp (0600 at creation, then its final mode and owner, fsync);
4. `validate_staged({final: temp})` — for validate commands that name the staged files; failure →
   temps removed, ValidateFailed, live files untouched;
5. back up each existing file (`<file>.certctl-bak.<unix ns>`, or in `backup_dir`);
6. rename every temp over its destination, in plan order (a failed rename restores the ones done);
7. `validate_after_swap()` — for validate commands that read the live config: failure → every file
   restored, no reload, ValidateFailed;
8. `reload()`: failure → restore, reload again, ReloadFailed (RollbackFailed if that fails too);
9. `verify()`: failure → restore, reload again, VerifyFailed (or RollbackFailed);
10. prune backups to the retention (-1: none kept; after RollbackFailed every backup is kept).

Hooks raise StepFailed to fail their step. Any other exception from a hook is treated the same way
(files restored) and chained as the cause: a bug in a hook must not leave half a deployment live.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from certctl.deploy.errors import (
    DeployError,
    LockTimeout,
    PlanInvalid,
    ReloadFailed,
    RollbackFailed,
    StepFailed,
    ValidateFailed,
    VerifyFailed,
    WriteFailed,
)
from certctl.deploy.files import (
    backup_path_for,
    copy_to_backup,
    fsync_directories,
    prune_backups,
    remove_quietly,
    restore_from_backup,
    same_content,
    temp_path_for,
    write_new_file,
)
from certctl.deploy.locks import DEFAULT_LOCK_TIMEOUT_SECONDS, locked_paths
from certctl.deploy.metrics import DeployCounters
from certctl.deploy.ownership import ExistingFile, Ownership, resolve
from certctl.deploy.plan import Plan
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage, RollbackOutcome

log = logging.getLogger("certctl.deploy")

Hook = Callable[[], None]
StagedHook = Callable[[Mapping[Path, Path]], None]


@dataclass(frozen=True, slots=True)
class Hooks:
    """The steps around the swap; each is optional and raises StepFailed to fail."""

    validate_staged: StagedHook | None = None  # gets {final path: staged temp path}
    validate_after_swap: Hook | None = None
    reload: Hook | None = None
    verify: Hook | None = None


def apply(
    plan: Plan,
    hooks: Hooks | None = None,
    *,
    force: bool = False,
    counters: DeployCounters | None = None,
    target_type: str = "",
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> ApplyResult:
    """Deploy `plan`; `force` skips the unchanged check. Counts the run in `counters` under `target_type`.

    Raises LockTimeout, PlanInvalid, WriteFailed, ValidateFailed, ReloadFailed, VerifyFailed or
    RollbackFailed, each with `result` set (what was done, whether it was rolled back).
    """
    run = _Run(plan, hooks or Hooks())
    try:
        result = run.execute(force, lock_timeout_seconds)
    except DeployError as exc:
        if exc.result is not None:
            if counters is not None:
                counters.record(target_type, exc.result)
            log.warning(
                "deploy.failed",
                extra={
                    "target_type": target_type,
                    "outcome": exc.result.outcome,
                    "stage": exc.result.stage,
                    "error": str(exc),
                },
            )
        raise
    if counters is not None:
        counters.record(target_type, result)
    log.info(
        "deploy.applied",
        extra={
            "target_type": target_type,
            "outcome": result.outcome,
            "files": [str(f.path) for f in plan.files],
            "duration_ms": round(result.duration_seconds * 1000),
        },
    )
    return result


def validate_staged(
    plan: Plan, check: StagedHook, *, lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
) -> None:
    """Dry run: stage the files, run `check({final: temp})`, remove the temps. Live files are never touched.

    Raises ValidateFailed (or LockTimeout, PlanInvalid, WriteFailed).
    """
    run = _Run(plan, Hooks(validate_staged=check))
    with run.locked(lock_timeout_seconds):
        try:
            run.stage_files(run.resolve())
            run.validate_staged()
        finally:
            run.remove_temps()


class _Run:
    def __init__(self, plan: Plan, hooks: Hooks) -> None:
        self.plan, self.hooks = plan, hooks
        self.started = time.perf_counter()
        self.stage = DeployStage.PLAN
        self.timings: dict[str, float] = {}
        self.existing: dict[Path, ExistingFile | None] = {}
        self.temps: dict[Path, Path] = {}  # final → staged temp, until renamed
        self.backups: dict[Path, Path | None] = {}
        self.swapped: list[Path] = []
        self.validate_ok: bool | None = None
        self.reloaded = False

    # -- bookkeeping --------------------------------------------------------------------------------

    def result(self, outcome: DeployOutcome, error: str = "", rollback: RollbackOutcome | None = None) -> ApplyResult:
        return ApplyResult(
            outcome,
            self.stage,
            backup_paths={p: (b if b is not None and b.exists() else None) for p, b in self.backups.items()},
            validate_ok=self.validate_ok,
            reloaded=self.reloaded,
            rollback=rollback,
            timings=dict(self.timings),
            duration_seconds=time.perf_counter() - self.started,
            error=error,
        )

    def failed(
        self,
        error: DeployError,
        outcome: DeployOutcome = DeployOutcome.FAILED,
        rollback: RollbackOutcome | None = None,
    ) -> DeployError:
        error.result = self.result(outcome, str(error), rollback)
        return error

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started

    @contextmanager
    def locked(self, timeout_seconds: float) -> Iterator[None]:
        self.stage = DeployStage.LOCK
        with ExitStack() as stack:
            with self.timed("lock"):
                try:
                    stack.enter_context(locked_paths([f.path for f in self.plan.files], timeout_seconds))
                except LockTimeout as exc:
                    raise self.failed(exc) from None
                except OSError as exc:
                    raise self.failed(WriteFailed(f"cannot lock {exc.filename}: {exc.strerror}")) from exc
            yield

    # -- the run --------------------------------------------------------------------------------------

    def execute(self, force: bool, lock_timeout_seconds: float) -> ApplyResult:
        with self.locked(lock_timeout_seconds):
            if not force and all(same_content(f.path, f.content) for f in self.plan.files):
                self.stage = DeployStage.DONE
                return self.result(DeployOutcome.UNCHANGED)
            self.stage_files(self.resolve())
            if self.hooks.validate_staged is not None:
                try:
                    self.validate_staged()
                finally:
                    self.remove_temps_on_failure()
            self.back_up()
            self.swap()
            if self.hooks.validate_after_swap is not None:
                self.step(DeployStage.VALIDATE, self.hooks.validate_after_swap, ValidateFailed, reload_again=False)
            if self.hooks.reload is not None:
                self.step(DeployStage.RELOAD, self.hooks.reload, ReloadFailed, reload_again=True)
            if self.hooks.verify is not None:
                self.step(DeployStage.VERIFY, self.hooks.verify, VerifyFailed, reload_again=True)
            self.stage = DeployStage.DONE
            self.prune()
            return self.result(DeployOutcome.SUCCESS)

    def resolve(self) -> dict[Path, Ownership]:
        self.stage = DeployStage.PLAN
        ownerships: dict[Path, Ownership] = {}
        for planned in self.plan.files:
            try:
                existing = ExistingFile.at(planned.path)
                ownerships[planned.path] = resolve(planned, existing, self.plan.defaults)
            except PlanInvalid as exc:
                raise self.failed(exc) from None
            except OSError as exc:
                raise self.failed(WriteFailed(f"stat {planned.path}: {exc.strerror}")) from exc
            self.existing[planned.path] = existing
        return ownerships

    def stage_files(self, ownerships: Mapping[Path, Ownership]) -> None:
        self.stage = DeployStage.WRITE
        with self.timed("write"):
            for planned in self.plan.files:
                temp = temp_path_for(planned.path)
                try:
                    write_new_file(temp, planned.content, ownerships[planned.path])
                except OSError as exc:
                    self.remove_temps()
                    raise self.failed(WriteFailed(f"write {planned.path}: {exc.strerror or exc}")) from exc
                self.temps[planned.path] = temp

    def validate_staged(self) -> None:
        check = self.hooks.validate_staged
        assert check is not None
        self.stage = DeployStage.VALIDATE
        staged = dict(self.temps)
        with self.timed("validate"):
            error = _call(lambda: check(staged))
        self.validate_ok = error is None
        if error is not None:
            raise self.failed(ValidateFailed(str(error))) from error

    def remove_temps_on_failure(self) -> None:
        if self.validate_ok is False:
            self.remove_temps()

    def back_up(self) -> None:
        self.stage = DeployStage.BACKUP
        made: list[Path] = []
        with self.timed("backup"):
            for planned in self.plan.files:
                existing = self.existing[planned.path]
                if existing is None:
                    self.backups[planned.path] = None
                    continue
                backup = backup_path_for(planned.path, self.plan.backup_dir)
                try:
                    copy_to_backup(planned.path, backup, existing)
                except OSError as exc:
                    for done in made:
                        remove_quietly(done)
                    self.backups.clear()
                    self.remove_temps()
                    raise self.failed(WriteFailed(f"back up {planned.path}: {exc.strerror or exc}")) from exc
                made.append(backup)
                self.backups[planned.path] = backup

    def swap(self) -> None:
        self.stage = DeployStage.SWAP
        with self.timed("swap"):
            for planned in self.plan.files:
                try:
                    os.replace(self.temps[planned.path], planned.path)
                except OSError as exc:
                    self.remove_temps()
                    self.roll_back(
                        WriteFailed(f"rename {planned.path}: {exc.strerror or exc}"), exc, reload_again=False
                    )
                del self.temps[planned.path]
                self.swapped.append(planned.path)
            fsync_directories([f.path for f in self.plan.files])

    def step(self, stage: DeployStage, hook: Hook, error_class: type[DeployError], *, reload_again: bool) -> None:
        self.stage = stage
        with self.timed(stage.value):
            error = _call(hook)
        if stage is DeployStage.VALIDATE:
            self.validate_ok = error is None
        elif stage is DeployStage.RELOAD:
            self.reloaded = error is None
        if error is not None:
            self.roll_back(error_class(str(error)), error, reload_again=reload_again)

    def roll_back(self, error: DeployError, cause: BaseException, *, reload_again: bool) -> None:
        """Restore every renamed file (and reload again); always raises."""
        with self.timed("rollback"):
            problems = self.restore()
            if problems:
                problem = f"restoring failed, backups kept: {'; '.join(problems)}"
            elif reload_again and self.hooks.reload is not None and (again := _call(self.hooks.reload)):
                problem = f"files restored, but the reload after restoring failed (server state unknown): {again}"
            else:
                problem = ""
        if problem:
            also = RollbackFailed(f"{error}; rollback failed: {problem}")
            raise self.failed(also, DeployOutcome.ROLLBACK_FAILED, RollbackOutcome.ALSO_FAILED) from cause
        self.prune()
        raise self.failed(error, DeployOutcome.ROLLED_BACK, RollbackOutcome.RESTORED) from cause

    def restore(self) -> list[str]:
        problems: list[str] = []
        for path in reversed(self.swapped):
            try:
                restore_from_backup(path, self.backups.get(path), self.existing.get(path))
            except OSError as exc:
                problems.append(f"restore {path}: {exc.strerror or exc}")
        fsync_directories(self.swapped)
        return problems

    def prune(self) -> None:
        keep = max(self.plan.backup_retention, 0)
        for planned in self.plan.files:
            prune_backups(planned.path, self.plan.backup_dir, keep)

    def remove_temps(self) -> None:
        for temp in self.temps.values():
            remove_quietly(temp)
        self.temps.clear()


def _call(hook: Hook) -> StepFailed | None:
    try:
        hook()
    except StepFailed as exc:
        return exc
    except Exception as exc:  # whatever a hook raised, the files must be put back; the cause is kept
        log.exception("deploy.hook_crashed")
        failure = StepFailed(f"{type(exc).__name__}: {exc}")
        failure.__cause__ = exc
        return failure
    return None
