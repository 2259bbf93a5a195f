"""What a file target is: a connector's rules, its parsed config, and the checks that turn the config
into something executable (agent-targets-discovery.md §A2.5, "validate_config")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from certctl.deploy.commands import OperatorCommand
from certctl.deploy.connectors.config import CommonSettings, ConfigReader, FileSettings, VerifySettings
from certctl.deploy.errors import TargetConfigError
from certctl.deploy.plan import FileRole
from certctl.deploy.verify import Endpoint


@dataclass(frozen=True, slots=True)
class FileTargetRules:
    target_type: str
    deployment_prefix: str  # deployment_id = "<prefix>-<unix seconds>"
    roles: tuple[FileRole, ...]  # the files it can write, in plan (and rename) order
    required: tuple[str, ...]  # config keys that must be non-empty
    validate_what: str  # error prefix: "<what> failed: …"
    reload_what: str
    forced_modes: Mapping[FileRole, int]  # mode when the config sets none, even over an existing file's
    owner_candidates: tuple[str, ...] = ()  # default owner:group of new files: the first that exists here
    needs_a_path: bool = False  # at least one `<role>_path` (the generic connector)


@dataclass(frozen=True, slots=True)
class FileTargetConfig:
    """A parsed config: types checked, nothing required yet (that is `validate_config`)."""

    paths: Mapping[FileRole, str]
    files: Mapping[FileRole, FileSettings]
    validate_command: str
    reload_command: str
    verify: VerifySettings
    common: CommonSettings

    @classmethod
    def parse(cls, rules: FileTargetRules, raw: Mapping[str, object] | None) -> FileTargetConfig:
        reader = ConfigReader(rules.target_type, raw)
        return cls(
            paths={role: reader.string(f"{role.value}_path") for role in rules.roles},
            files={role: FileSettings.read(reader, role.value) for role in rules.roles},
            validate_command=reader.string("validate_command"),
            reload_command=reader.string("reload_command"),
            verify=VerifySettings.read(reader),
            common=CommonSettings.read(reader),
        )


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A validated config in executable form."""

    paths: Mapping[FileRole, Path]
    validate: OperatorCommand | None
    reload: OperatorCommand | None
    endpoint: Endpoint | None


def check_target(rules: FileTargetRules, config: FileTargetConfig, *, host_checks: bool = True) -> CheckedTarget:
    """Raises TargetConfigError naming the field: required keys, paths, commands (injection guard,
    placeholders), owners, the verify endpoint. `host_checks=False` skips what only the target host can
    answer (the directories exist)."""
    return _Checker(rules, config, host_checks).check()


class _Checker:
    def __init__(self, rules: FileTargetRules, config: FileTargetConfig, host_checks: bool) -> None:
        self.rules, self.config, self.target_type = rules, config, rules.target_type
        self.host_checks = host_checks

    def _error(self, key: str, problem: str) -> TargetConfigError:
        return TargetConfigError(self.target_type, key, problem)

    def check(self) -> CheckedTarget:
        config = self.config
        values = {f"{role.value}_path": path for role, path in config.paths.items()}
        values |= {"validate_command": config.validate_command, "reload_command": config.reload_command}
        for key in self.rules.required:
            if not values.get(key):
                raise self._error(key, "is required")
        paths = {role: self._check_path(role, text) for role, text in config.paths.items() if text}
        if self.rules.needs_a_path and not paths:
            names = ", ".join(f"{role.value}_path" for role in self.rules.roles)
            raise self._error("", f"set at least one of {names}")
        if len(set(paths.values())) != len(paths):
            raise self._error("", "every file path must be different")
        for role, settings in config.files.items():
            if bool(settings.owner) != bool(settings.group):
                raise self._error(
                    f"{role.value}_file_owner", f"set both {role.value}_file_owner and _group, or neither"
                )
        if config.common.backup_dir is not None and not config.common.backup_dir.is_absolute():
            raise self._error("backup_dir", "must be an absolute path")
        return CheckedTarget(
            paths,
            self._command("validate_command", config.validate_command, paths),
            self._command("reload_command", config.reload_command, paths),
            self._endpoint(),
        )

    def _check_path(self, role: FileRole, text: str) -> Path:
        key = f"{role.value}_path"
        path = Path(text)
        if not path.is_absolute():
            raise self._error(key, f"must be an absolute path, got {text!r}")
        if ".." in path.parts:
            raise self._error(key, f"must not contain '..' segments, got {text!r}")
        if self.host_checks and not path.parent.is_dir():
            raise self._error(key, f"directory {path.parent} does not exist")
        return path

    def _command(self, key: str, text: str, paths: Mapping[FileRole, Path]) -> OperatorCommand | None:
        if not text:
            return None
        try:
            command = OperatorCommand.parse(text)
        except ValueError as exc:
            raise self._error(key, str(exc)) from None
        unknown = sorted(command.placeholders - {role.placeholder for role in paths})
        if unknown:
            raise self._error(key, f"{unknown[0]} names no file of this {self.target_type} target")
        return command

    def _endpoint(self) -> Endpoint | None:
        verify = self.config.verify
        if not verify.active:
            return None
        try:
            return Endpoint.parse(verify.endpoint, verify.server_name or None)
        except ValueError as exc:
            raise self._error("post_deploy_verify.endpoint", str(exc)) from None
