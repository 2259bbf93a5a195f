"""Reading target configs: typed values, the Go wire forms and the human ones (§0 point 9, §A2.5).

* File modes: a JSON number is the mode in decimal (Go's encoding: 0640 is `416`); a string is octal
  (`"0640"`, `"640"`, `"0o640"`).
* Durations: a JSON integer is nanoseconds (Go's encoding); a string is a Go duration (`"1s"`, `"500ms"`).
* Missing keys and nulls take the default; unknown keys are ignored, as Go's decoder does.
Every error is a TargetConfigError naming the key (`post_deploy_verify.timeout` when nested).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from certctl.deploy.errors import TargetConfigError
from certctl.deploy.plan import MAX_FILE_MODE
from certctl.deploy.verify import VerifyPolicy
from certctl.durations import parse_go_duration

_NANOS_PER_SECOND = 1_000_000_000


class ConfigReader:
    """Typed access to one (possibly nested) config object of a target type."""

    def __init__(self, target_type: str, raw: Mapping[str, object] | None, where: str = "") -> None:
        self.target_type, self._raw, self._where = target_type, raw or {}, where

    def error(self, key: str, problem: str) -> TargetConfigError:
        return TargetConfigError(self.target_type, self._where + key, problem)

    def _get(self, key: str) -> object:
        return self._raw.get(key)

    def string(self, key: str, default: str = "", *, strip: bool = True) -> str:
        """`strip=False` for secrets, whose spaces are part of the value."""
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {type(value).__name__}")
        return value.strip() if strip else value

    def integer(self, key: str, default: int = 0) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def mode(self, key: str) -> int | None:
        """None when unset or 0 (Go's zero value means "not set")."""
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            raise self.error(key, f"must be a file mode, got {value!r}")
        if isinstance(value, int):
            mode = value
        elif isinstance(value, str):
            text = value.strip().lower().removeprefix("0o")
            try:
                mode = int(text, 8)
            except ValueError:
                raise self.error(key, f'{value!r} is not an octal file mode such as "0640"') from None
        else:
            raise self.error(key, f'must be a file mode ("0640" or 416), got {value!r}')
        if not 0 <= mode <= MAX_FILE_MODE:
            raise self.error(key, f"file mode {mode:#o} is outside 0-0o7777")
        return mode or None

    def duration_seconds(self, key: str) -> float:
        """0.0 when unset (callers then take their default)."""
        value = self._get(key)
        if value is None:
            return 0.0
        if isinstance(value, bool):
            raise self.error(key, f"must be a duration, got {value!r}")
        if isinstance(value, int):
            seconds = value / _NANOS_PER_SECOND
        elif isinstance(value, str):
            try:
                seconds = parse_go_duration(value).total_seconds()
            except ValueError as exc:
                raise self.error(key, str(exc)) from None
        else:
            raise self.error(key, f'must be a duration ("1s" or nanoseconds), got {value!r}')
        if seconds < 0:
            raise self.error(key, "must not be negative")
        return seconds

    def nested(self, key: str) -> ConfigReader:
        value = self._get(key)
        if value is not None and not isinstance(value, Mapping):
            raise self.error(key, f"must be an object, got {type(value).__name__}")
        return ConfigReader(self.target_type, value, f"{self._where}{key}.")


@dataclass(frozen=True, slots=True)
class FileSettings:
    """`<role>_file_mode`, `<role>_file_owner`, `<role>_file_group` of one file."""

    mode: int | None = None
    owner: str = ""
    group: str = ""

    @classmethod
    def read(cls, reader: ConfigReader, role: str) -> FileSettings:
        return cls(
            reader.mode(f"{role}_file_mode"), reader.string(f"{role}_file_owner"), reader.string(f"{role}_file_group")
        )


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """`post_deploy_verify{enabled, endpoint, timeout, server_name}` and the retry keys beside it.

    Enabled by default, but without an endpoint nothing is probed (§A2.3).
    """

    enabled: bool = True
    endpoint: str = ""
    server_name: str = ""  # ours: SNI when the endpoint is an address
    policy: VerifyPolicy = field(default_factory=VerifyPolicy)

    @classmethod
    def read(cls, reader: ConfigReader, *, enabled_by_default: bool = True) -> VerifySettings:
        """`enabled_by_default=False` for the connectors that probe only when asked to (Traefik, Envoy)."""
        block = reader.nested("post_deploy_verify")
        attempts = reader.integer("post_deploy_verify_attempts")
        if attempts < 0:
            raise reader.error("post_deploy_verify_attempts", "must not be negative")
        policy = VerifyPolicy(
            attempts=attempts,
            initial_backoff_seconds=reader.duration_seconds("post_deploy_verify_backoff"),
            max_backoff_seconds=reader.duration_seconds("post_deploy_verify_max_backoff"),
            timeout_seconds=block.duration_seconds("timeout"),
        )
        enabled = block.boolean("enabled", enabled_by_default)
        return cls(enabled, block.string("endpoint"), block.string("server_name"), policy)

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.endpoint)


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """`backup_retention` (0 → the agent's default, -1 → none kept), and ours: `backup_dir`,
    `command_timeout` (→ 60 s)."""

    backup_retention: int = 0
    backup_dir: Path | None = None
    command_timeout_seconds: float = 0.0

    @classmethod
    def read(cls, reader: ConfigReader) -> CommonSettings:
        retention = reader.integer("backup_retention")
        if retention < -1:
            raise reader.error("backup_retention", "must be -1 (keep none), 0 (the default) or a positive count")
        backup_dir = reader.string("backup_dir")
        return cls(retention, Path(backup_dir) if backup_dir else None, reader.duration_seconds("command_timeout"))
