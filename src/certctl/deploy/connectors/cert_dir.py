"""Targets configured with a directory and file names instead of paths: Traefik, Caddy (file mode),
Envoy (agent-targets-discovery.md §A2.5).

`cert_dir` plus a name per file (`cert_file`, `key_file`, … with defaults) becomes the `<role>_path`
layout the file engine (files.py) deploys in one plan. The original applied the name defaults only in
`validate_config`, so an agent that never called it wrote to the directory itself; ours applies them
when the config is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar, Self

from certctl.deploy.connectors.base import ConnectorDeps, DeployRequest
from certctl.deploy.connectors.config import CommonSettings, ConfigReader, FileSettings, VerifySettings
from certctl.deploy.connectors.file_target import CheckedTarget, FileTargetConfig, FileTargetRules
from certctl.deploy.connectors.files import FileConnector, chained_contents, directory_writable
from certctl.deploy.errors import TargetConfigError
from certctl.deploy.plan import FileRole

DIR_KEY = "cert_dir"


@dataclass(frozen=True, slots=True)
class NameKey:
    """One configurable file name: its role, its config key and its default ("" → optional file)."""

    role: FileRole
    key: str
    default: str = ""


@dataclass(frozen=True, slots=True)
class DirectoryLayout:
    directory: str
    names: tuple[tuple[NameKey, str], ...]  # (key, configured name or its default)

    @classmethod
    def read(cls, reader: ConfigReader, keys: Sequence[NameKey]) -> DirectoryLayout:
        return cls(reader.string(DIR_KEY), tuple((key, reader.string(key.key) or key.default) for key in keys))

    def paths(self) -> dict[FileRole, str]:
        """`{role: "<cert_dir>/<name>"}` for every named file; empty without a directory."""
        if not self.directory:
            return {}
        return {key.role: str(Path(self.directory) / name) for key, name in self.names if name}

    def check(self, target_type: str, *, plain_names: bool, host_checks: bool) -> None:
        """Raises TargetConfigError naming the key.

        `plain_names`: names must not contain `/` or `\\` (Envoy); otherwise relative paths without
        `..` segments are allowed (a subdirectory that exists). `host_checks`: the directory must
        exist and be writable (skipped on the control plane).
        """
        if not self.directory:
            raise TargetConfigError(target_type, DIR_KEY, "is required")
        directory = Path(self.directory)
        if not directory.is_absolute() or ".." in directory.parts:
            raise TargetConfigError(
                target_type, DIR_KEY, f"must be an absolute path without '..', got {self.directory!r}"
            )
        seen: set[str] = set()
        for key, name in self.names:
            if not name:
                continue
            _check_name(target_type, key.key, name, plain_names)
            if name in seen:
                raise TargetConfigError(target_type, key.key, f"{name!r} is used for two files")
            seen.add(name)
        if not host_checks:
            return
        if not directory.is_dir():
            raise TargetConfigError(target_type, DIR_KEY, f"directory {directory} does not exist")
        writable = directory_writable(DIR_KEY, directory)
        if not writable.ok:
            raise TargetConfigError(target_type, DIR_KEY, writable.message)
        for key, name in self.names:
            if name and not (directory / name).parent.is_dir():
                raise TargetConfigError(target_type, key.key, f"directory {(directory / name).parent} does not exist")


def _check_name(target_type: str, key: str, name: str, plain: bool) -> None:
    if plain and ("/" in name or "\\" in name):
        raise TargetConfigError(target_type, key, f"must be a file name without '/' or '\\', got {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
        raise TargetConfigError(target_type, key, f"must be a relative name without '..' segments, got {name!r}")


class DirectoryConnector(FileConnector):
    """A file connector whose paths come from `cert_dir` and file names."""

    name_keys: ClassVar[tuple[NameKey, ...]]
    plain_names: ClassVar[bool] = False
    verify_by_default: ClassVar[bool] = True  # False: probe only with `post_deploy_verify.enabled: true`

    def __init__(self, config: FileTargetConfig, layout: DirectoryLayout, deps: ConnectorDeps | None = None) -> None:
        super().__init__(config, deps)
        self.layout = layout

    @classmethod
    def from_config(cls, raw: Mapping[str, object] | None, deps: ConnectorDeps | None = None) -> Self:
        layout, config = cls.read_layout(ConfigReader(cls.rules.target_type, raw))
        return cls(config, layout, deps)

    @classmethod
    def read_layout(cls, reader: ConfigReader) -> tuple[DirectoryLayout, FileTargetConfig]:
        layout = DirectoryLayout.read(reader, cls.name_keys)
        return layout, directory_config(cls.rules, reader, layout, verify_by_default=cls.verify_by_default)

    def _needs_dir(self) -> bool:
        return True

    def _file_contents(self, request: DeployRequest) -> Mapping[FileRole, str]:
        return chained_contents(request, separate_chain=FileRole.CHAIN in self.config.paths)

    def _check(self) -> CheckedTarget:
        if self._needs_dir() or self.layout.directory:
            self.layout.check(self.target_type, plain_names=self.plain_names, host_checks=self._deps.host_checks)
        return super()._check()


def directory_config(
    rules: FileTargetRules, reader: ConfigReader, layout: DirectoryLayout, *, verify_by_default: bool
) -> FileTargetConfig:
    """The file engine's config: the layout's paths, `<role>_file_mode/_owner/_group`, no commands."""
    return FileTargetConfig(
        paths=layout.paths(),
        files={role: FileSettings.read(reader, role.value) for role in rules.roles},
        validate_command="",
        reload_command="",
        verify=VerifySettings.read(reader, enabled_by_default=verify_by_default),
        common=CommonSettings.read(reader),
    )
