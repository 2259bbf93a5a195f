"""The engine of the file-based connectors (NGINX, Apache, HAProxy, generic files).

Each connector is a `FileTargetRules` value (file_target.py): which files it writes, which keys it
requires, its forced modes, default owners and error prefixes. `FileConnector` runs it: pre-check, one
atomic plan, validate (staged when the command names the staged files, otherwise after the swap and
before any reload), reload, post-deploy TLS verify, rollback (agent-targets-discovery.md §A2.1, §A2.3,
§A2.5).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Self

from certctl.deploy.apply import Hooks, apply, validate_staged
from certctl.deploy.commands import OperatorCommand, run_command
from certctl.deploy.connectors.base import (
    CheckItem,
    ConnectorDeps,
    DeployRequest,
    DeployResult,
    TargetCheck,
)
from certctl.deploy.connectors.file_target import CheckedTarget, FileTargetConfig, FileTargetRules, check_target
from certctl.deploy.connectors.results import ResultParts, finish, verify_served
from certctl.deploy.errors import (
    CommandFailed,
    DeployError,
    PlanInvalid,
    TargetConfigError,
    ValidateFailed,
    ValidateOnlyNotSupported,
)
from certctl.deploy.files import remove_quietly, unique_suffix
from certctl.deploy.ownership import first_existing_account
from certctl.deploy.plan import FileDefaults, FileRole, Plan, PlannedFile
from certctl.deploy.precheck import precheck
from certctl.deploy.result import ApplyResult, DeployOutcome, DeployStage
from certctl.deploy.verify import VerifyResult


class FileConnector:
    rules: ClassVar[FileTargetRules]
    target_type: ClassVar[str]

    def __init__(self, config: FileTargetConfig, deps: ConnectorDeps | None = None) -> None:
        self.config = config
        self._deps = deps or ConnectorDeps()

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        """Parse only (types, defaults); raises TargetConfigError for a value of the wrong type."""
        return cls(FileTargetConfig.parse(cls.rules, raw), deps)

    # -- validate_config ----------------------------------------------------------------------------

    def validate_config(self) -> None:
        self._check()

    def _check(self) -> CheckedTarget:
        return check_target(self.rules, self.config, host_checks=self._deps.host_checks)

    # -- deploy ---------------------------------------------------------------------------------------

    def deploy(self, request: DeployRequest) -> DeployResult:
        checked = self._check()
        started = time.perf_counter()
        with self._deps.target_locks.holding(request.target_id):
            return self._deploy_files(request, checked, started)

    def _deploy_files(self, request: DeployRequest, checked: CheckedTarget, started: float) -> DeployResult:
        """The file deployment, with the target's lock already held."""
        try:
            warnings = self._precheck(request)
            plan = self._plan(request, checked)
        except (ValidateFailed, PlanInvalid) as exc:
            stage = DeployStage.PRECHECK if isinstance(exc, ValidateFailed) else DeployStage.PLAN
            exc.result = ApplyResult.stopped(stage, str(exc), time.perf_counter() - started)
            self._deps.counters.record(self.target_type, exc.result)
            return self._result(exc.result, checked, started, error=exc)
        verification: list[VerifyResult] = []
        try:
            applied = apply(
                plan,
                self._hooks(request, checked, plan, verification),
                counters=self._deps.counters,
                target_type=self.target_type,
            )
        except DeployError as exc:
            applied = exc.result or ApplyResult.stopped(DeployStage.PLAN, str(exc))  # apply() always sets it
            return self._result(applied, checked, started, warnings, verification, exc)
        return self._result(applied, checked, started, warnings, verification)

    # -- what subclasses may change (the file layout beyond `<role>_path`) ------------------------------

    def _file_contents(self, request: DeployRequest) -> Mapping[FileRole, str]:
        """Each role's text; the default writes the certificate exactly (see `_contents`)."""
        return _contents(request)

    def _extra_files(self, checked: CheckedTarget) -> Mapping[str, PlannedFile]:
        """Files deployed with the certificate that hold no PEM (Envoy's SDS file), by metadata key."""
        return {}

    def _deployment_prefix(self) -> str:
        return self.rules.deployment_prefix

    def _validate_what(self) -> str:
        """The validate step's name in errors ("nginx -t failed: …")."""
        return self.rules.validate_what

    def _reload_what(self) -> str:
        return self.rules.reload_what

    def _extra_metadata(self) -> dict[str, str]:
        return {}

    def _precheck(self, request: DeployRequest) -> tuple[str, ...]:
        if not self._deps.precheck:
            return ()
        key = request.key_pem if self._writes(FileRole.KEY) or self._writes(FileRole.PEM) else None
        return precheck(request.cert_pem, request.chain_pem, key, now=self._deps.clock.now())

    def _writes(self, role: FileRole) -> bool:
        return bool(self.config.paths.get(role))

    def _plan(self, request: DeployRequest, checked: CheckedTarget) -> Plan:
        contents = self._file_contents(request)
        files = []
        for role in self.rules.roles:
            path, content = checked.paths.get(role), contents.get(role)
            if path is None or content is None:
                continue
            settings = self.config.files[role]
            files.append(
                PlannedFile(
                    path,
                    content.encode("utf-8"),
                    role,
                    settings.mode or self.rules.forced_modes.get(role),
                    settings.owner or None,
                    settings.group or None,
                )
            )
        files.extend(self._extra_files(checked).values())
        account = first_existing_account(self.rules.owner_candidates)
        retention = self.config.common.backup_retention or self._deps.default_backup_retention
        return Plan(tuple(files), FileDefaults(None, account, account), retention, self.config.common.backup_dir)

    def _hooks(
        self, request: DeployRequest, checked: CheckedTarget, plan: Plan, verification: list[VerifyResult]
    ) -> Hooks:
        final = _placeholder_paths(plan.files, {f.path: f.path for f in plan.files})
        validate, reload = checked.validate, checked.reload
        staged_check = after_swap_check = reload_hook = verify_hook = None
        if validate is not None and validate.placeholders:

            def staged_check(staged: Mapping[Path, Path]) -> None:
                self._run(validate, self._validate_what(), _placeholder_paths(plan.files, staged), staged=True)

        elif validate is not None:

            def after_swap_check() -> None:
                self._run(validate, self._validate_what(), final)

        if reload is not None:

            def reload_hook() -> None:
                self._run(reload, self._reload_what(), final)

        if checked.endpoint is not None:
            endpoint = checked.endpoint

            def verify_hook() -> None:
                verify_served(endpoint, request.cert_pem, self.config.verify.policy, self._deps, verification)

        return Hooks(staged_check, after_swap_check, reload_hook, verify_hook)

    def _run(self, command: OperatorCommand, what: str, paths: Mapping[str, str], *, staged: bool = False) -> None:
        timeout = self.config.common.command_timeout_seconds or self._deps.default_command_timeout_seconds
        run_command(self._deps.runner, command, what=what, paths=paths, staged=staged, timeout_seconds=timeout)

    def _result(
        self,
        applied: ApplyResult,
        checked: CheckedTarget,
        started: float,
        warnings: Sequence[str] = (),
        verification: Sequence[VerifyResult] = (),
        error: DeployError | None = None,
    ) -> DeployResult:
        metadata = {f"{role.value}_path": str(path) for role, path in checked.paths.items()}
        metadata |= {name: str(planned.path) for name, planned in self._extra_files(checked).items()}
        metadata |= self._extra_metadata()
        if applied.outcome is DeployOutcome.UNCHANGED:
            message = "unchanged: every file already holds these bytes"
        else:
            message = f"deployed {len(applied.backup_paths)} file(s)"
        primary = next(iter(checked.paths.values()))
        parts = ResultParts(
            self.target_type,
            self._deployment_prefix(),
            str(checked.endpoint) if checked.endpoint else str(primary),
            started,
            metadata,
            message,
            warnings,
            verification,
        )
        return finish(parts, applied, self._deps, error)

    # -- dry runs ---------------------------------------------------------------------------------------

    def validate_only(self, request: DeployRequest) -> None:
        checked = self._check()
        validate = checked.validate
        if validate is None:
            raise ValidateOnlyNotSupported(f"{self.target_type} target has no validate_command to dry-run")
        what = f"{self._validate_what()} (ValidateOnly)"
        if validate.placeholders:
            plan = self._plan(request, checked)
            validate_staged(
                plan, lambda staged: self._run(validate, what, _placeholder_paths(plan.files, staged), staged=True)
            )
            return
        try:
            self._run(validate, what, _live_placeholders(checked.paths))
        except CommandFailed as exc:
            raise ValidateFailed(str(exc)) from exc

    def test(self) -> TargetCheck:
        try:
            checked = self._check()
        except TargetConfigError as exc:
            return TargetCheck((CheckItem("config", False, str(exc)),))
        items = [CheckItem("config", True, "config is valid")]
        items.extend(_writable(f"{role.value}_path", path) for role, path in checked.paths.items())
        items.extend(_writable(name, planned.path) for name, planned in self._extra_files(checked).items())
        if checked.validate is not None:
            items.append(self._test_validate(checked.validate, checked.paths))
        return TargetCheck(tuple(items))

    def _test_validate(self, command: OperatorCommand, paths: Mapping[FileRole, Path]) -> CheckItem:
        missing = [
            str(paths[role]) for role in paths if role.placeholder in command.placeholders and not paths[role].exists()
        ]
        if missing:
            return CheckItem("validate_command", True, f"not run: no file yet at {', '.join(missing)}")
        try:
            self._run(command, self._validate_what(), _live_placeholders(paths))
        except CommandFailed as exc:
            return CheckItem("validate_command", False, str(exc))
        return CheckItem("validate_command", True, f"{command} passed")


def _contents(request: DeployRequest) -> dict[FileRole, str]:
    """Each file's text: the cert exactly, the chain and key only when given, combined files joined."""
    contents = {FileRole.CERT: request.cert_pem}
    if request.chain_pem.strip():
        contents[FileRole.CHAIN] = request.chain_pem
    if request.key_pem and request.key_pem.strip():
        contents[FileRole.KEY] = request.key_pem
    contents[FileRole.FULLCHAIN] = joined_pem(request.cert_pem, request.chain_pem)
    contents[FileRole.PEM] = joined_pem(request.cert_pem, request.chain_pem, request.key_pem or "")  # HAProxy order
    return contents


def chained_contents(request: DeployRequest, *, separate_chain: bool) -> dict[FileRole, str]:
    """The certificate file holds the leaf then the chain, unless the chain has a file of its own
    (Traefik, Caddy, Envoy, Postfix, Dovecot); the key file only when the request has a key."""
    contents = {FileRole.CERT: request.cert_pem if separate_chain else joined_pem(request.cert_pem, request.chain_pem)}
    if separate_chain and request.chain_pem.strip():
        contents[FileRole.CHAIN] = request.chain_pem
    if request.key_pem and request.key_pem.strip():
        contents[FileRole.KEY] = request.key_pem
    return contents


def joined_pem(*parts: str) -> str:
    """PEM blocks one after another, each ending in exactly one newline (empty parts skipped)."""
    return "".join(part.rstrip("\n") + "\n" for part in parts if part.strip())


def _placeholder_paths(files: Sequence[PlannedFile], where: Mapping[Path, Path]) -> dict[str, str]:
    """{"{cert_path}": path, …} for the planned files, each at its path in `where` (final or staged)."""
    return _live_placeholders({f.role: where[f.path] for f in files if f.path in where})


def _live_placeholders(paths: Mapping[FileRole, Path]) -> dict[str, str]:
    found = {}
    for role, path in paths.items():
        if (placeholder := role.placeholder) is not None:
            found[placeholder] = str(path)
    return found


def _writable(name: str, path: Path) -> CheckItem:
    return directory_writable(name, path.parent)


def directory_writable(name: str, directory: Path) -> CheckItem:
    """Create and delete a `.certctl-write-test.<ns>` file in `directory`: can the agent write there?"""
    probe = directory / f".certctl-write-test.{unique_suffix()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return CheckItem(name, False, f"cannot write in {directory}: {exc.strerror}")
    os.close(fd)
    remove_quietly(probe)
    return CheckItem(name, True, f"{directory} is writable")
