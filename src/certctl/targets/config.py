"""Server-side checks of a target config that need no agent host (core.md §2.4, §13.6).

Commands pass the shell-injection guard and paths must be absolute, at any depth of the config (IIS
nests its WinRM settings). Empty or null values count as "not set"; which fields a connector requires
is checked by the agent when it builds the connector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from certctl.deploy.connectors import CONNECTORS, ConnectorDeps, build_connector
from certctl.deploy.errors import DeployError
from certctl.errors import ValidationFailed
from certctl.security.commands import validate_command

# Paths to programs the agent runs: a bare name is looked up on the agent's PATH (the JavaKeystore
# connector defaults `keytool_path` to `keytool`, agent-targets-discovery.md §A2.5).
PROGRAM_PATH_KEYS = frozenset({"keytool_path"})
_BARE_PROGRAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def is_command_key(name: str) -> bool:
    lowered = name.lower()
    return lowered == "command" or lowered.endswith(("_command", "_cmd"))


def is_path_key(name: str) -> bool:
    return name.lower().endswith("_path")


def validate_target_config(config: Mapping[str, Any], target_type: str | None = None) -> None:
    """Raises ValidationFailed naming the offending key (as `config.<key>`) and what is wrong with it.

    With `target_type`, the connector's own `validate_config` runs too (required fields, defaults, the
    command guard), exactly as the agent will run it before deploying.
    """
    _check_object(config, "config")
    if target_type is not None and target_type in CONNECTORS:
        try:
            build_connector(target_type, config, ConnectorDeps(host_checks=False)).validate_config()
        except DeployError as exc:
            raise ValidationFailed(f"config: {exc}") from exc


def _check_object(config: Mapping[str, Any], where: str) -> None:
    for name, value in config.items():
        location = f"{where}.{name}"
        if is_command_key(name):
            _check_command(value, location)
        elif is_path_key(name):
            _check_path(value, location, program=name.lower() in PROGRAM_PATH_KEYS)
        else:
            _check_nested(value, location)


def _check_nested(value: Any, location: str) -> None:
    if isinstance(value, Mapping):
        _check_object(value, location)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_nested(item, f"{location}[{index}]")


def _check_command(value: Any, location: str) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str):
        raise ValidationFailed(f"{location} must be a string holding one shell command")
    try:
        validate_command(value)
    except ValueError as exc:
        raise ValidationFailed(f"{location}: {exc}") from exc


def _check_path(value: Any, location: str, *, program: bool = False) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str):
        raise ValidationFailed(f"{location} must be a string holding an absolute path")
    if program and _BARE_PROGRAM.fullmatch(value):
        return
    if "\x00" in value:
        raise ValidationFailed(f"{location} contains a NUL character")
    # Agents run on Linux and on Windows (IIS, WinCertStore): either kind of absolute path is fine.
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if not (posix.is_absolute() or windows.is_absolute()):
        raise ValidationFailed(f"{location} must be an absolute path, got {value!r}")
    if ".." in posix.parts or ".." in windows.parts:
        raise ValidationFailed(f"{location} must not contain '..' segments, got {value!r}")
