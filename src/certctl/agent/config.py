"""The agent's settings (agent-targets-discovery.md §A1.1): flags > environment > config file > defaults.

The config file (`--config`, or `CERTCTL_AGENT_CONFIG`) is an environment file, `KEY=VALUE` per line,
the format of `/etc/certctl/agent.env` that systemd's `EnvironmentFile=` reads. A variable set but
empty counts as unset, as in the original. Booleans follow the original's rule (`1,t,true,yes,on` /
`0,f,false,no,off`, anything else → the default, with a warning); every other bad value stops the
agent with a message naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from certctl.agent.errors import AgentConfigError
from certctl.config import LogFormat, LogLevel
from certctl.durations import DURATION_FORM, parse_go_duration

DEFAULT_SERVER_URL = "https://localhost:8443"
DEFAULT_STATE_FILE = Path("/var/lib/certctl/agent.json")
DEFAULT_KEY_DIR = Path("/var/lib/certctl/keys")
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 60.0
DEFAULT_POLL_INTERVAL_SECONDS = 30.0
DEFAULT_VERIFY_DELAY_SECONDS = 2.0
DEFAULT_VERIFY_TIMEOUT_SECONDS = 10.0
# certctl.deploy.plan.DEFAULT_BACKUP_RETENTION, repeated so that `certctl --help` does not import the
# deploy package (a test keeps the two equal).
DEFAULT_BACKUP_RETENTION = 3
CONFIG_FILE_VARIABLE = "CERTCTL_AGENT_CONFIG"

_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})
_LOG_LEVELS = {
    "debug": LogLevel.DEBUG,
    "info": LogLevel.INFO,
    "warn": LogLevel.WARN,
    "warning": LogLevel.WARN,
    "error": LogLevel.ERROR,
}


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Everything the agent reads at start; times in seconds. Secrets never appear in the repr."""

    server_url: str = DEFAULT_SERVER_URL
    api_key: str | None = field(default=None, repr=False)
    agent_id: str | None = None
    agent_name: str | None = None  # registration name; the host name when unset
    bootstrap_token: str | None = field(default=None, repr=False)
    state_file: Path = DEFAULT_STATE_FILE
    key_dir: Path = DEFAULT_KEY_DIR
    discovery_dirs: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    insecure_skip_verify: bool = False
    verify_deployment: bool = True
    verify_delay_seconds: float = DEFAULT_VERIFY_DELAY_SECONDS
    verify_timeout_seconds: float = DEFAULT_VERIFY_TIMEOUT_SECONDS
    deploy_backup_retention: int = DEFAULT_BACKUP_RETENTION
    heartbeat_interval_seconds: float = DEFAULT_HEARTBEAT_INTERVAL_SECONDS
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.JSON
    dry_run: bool = False
    warnings: tuple[str, ...] = ()  # settings that fell back to a default; logged once logging is set up


def check_server_url(url: str) -> str:
    """The URL without a trailing slash, scheme lowercased; raises AgentConfigError (A4 case 16)."""
    value = url.strip()
    if not value:
        raise AgentConfigError("CERTCTL_SERVER_URL is empty; set it to the control plane's https:// URL")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise AgentConfigError(
            f"CERTCTL_SERVER_URL {value!r} uses plaintext http://; the agent only talks to https:// servers"
        )
    if not scheme:
        raise AgentConfigError(f"CERTCTL_SERVER_URL {value!r} is missing a scheme; use https://host:port")
    if scheme != "https":
        raise AgentConfigError(f"CERTCTL_SERVER_URL {value!r} has an unsupported scheme {scheme!r}; use https://")
    if not parts.hostname:
        raise AgentConfigError(f"CERTCTL_SERVER_URL {value!r} has no host")
    return "https" + value[len(parts.scheme) :].rstrip("/")


def parse_go_bool(value: str | None, default: bool) -> bool | None:
    """True/False per the original's rule; None when the value is not a recognised boolean."""
    if value is None or not value.strip():
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines; blank lines, `#` comments and a leading `export ` are allowed, one pair of
    matching quotes around a value is removed. Raises AgentConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgentConfigError(f"reading config file {path}: {exc.strerror or exc}") from exc
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise AgentConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load_agent_settings(
    flags: Mapping[str, str | bool | None], environ: Mapping[str, str], config_file: Path | None = None
) -> AgentSettings:
    """Merge the three sources and parse. `flags` is keyed by the variable a flag stands for
    (`CERTCTL_SERVER_URL`, …); None means "not given". Raises AgentConfigError."""
    file_path = config_file or _path_or_none(environ.get(CONFIG_FILE_VARIABLE))
    merged: dict[str, str] = dict(read_env_file(file_path)) if file_path else {}
    merged |= {key: value for key, value in environ.items() if key.startswith("CERTCTL_") and value.strip()}
    for key, flag in flags.items():
        if flag is None:
            continue
        merged[key] = ("true" if flag else "false") if isinstance(flag, bool) else flag
    return _Parser(merged).settings()


class _Parser:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self._warnings: list[str] = []

    def _get(self, key: str) -> str | None:
        value = self._values.get(key)
        return value.strip() if value is not None and value.strip() else None

    def settings(self) -> AgentSettings:
        url = self._get("CERTCTL_SERVER_URL")
        return AgentSettings(
            server_url=check_server_url(url if url is not None else DEFAULT_SERVER_URL),
            api_key=self._get("CERTCTL_API_KEY"),
            agent_id=self._get("CERTCTL_AGENT_ID"),
            agent_name=self._get("CERTCTL_AGENT_NAME"),
            bootstrap_token=self._get("CERTCTL_AGENT_BOOTSTRAP_TOKEN"),
            state_file=self._path("CERTCTL_AGENT_STATE_FILE") or DEFAULT_STATE_FILE,
            key_dir=self._path("CERTCTL_KEY_DIR") or DEFAULT_KEY_DIR,
            discovery_dirs=tuple(
                item.strip() for item in (self._get("CERTCTL_DISCOVERY_DIRS") or "").split(",") if item.strip()
            ),
            ca_bundle=self._path("CERTCTL_SERVER_CA_BUNDLE_PATH"),
            insecure_skip_verify=self._bool("CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY", False),
            verify_deployment=self._bool("CERTCTL_VERIFY_DEPLOYMENT", True),
            verify_delay_seconds=self._seconds("CERTCTL_VERIFY_DELAY", DEFAULT_VERIFY_DELAY_SECONDS, minimum=0.0),
            verify_timeout_seconds=self._seconds(
                "CERTCTL_VERIFY_TIMEOUT", DEFAULT_VERIFY_TIMEOUT_SECONDS, minimum=0.001
            ),
            deploy_backup_retention=self._retention(),
            heartbeat_interval_seconds=self._seconds(
                "CERTCTL_AGENT_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL_SECONDS, minimum=0.001
            ),
            poll_interval_seconds=self._seconds(
                "CERTCTL_AGENT_POLL_INTERVAL", DEFAULT_POLL_INTERVAL_SECONDS, minimum=0.001
            ),
            log_level=self._log_level(),
            log_format=self._log_format(),
            dry_run=self._bool("CERTCTL_AGENT_DRY_RUN", False),
            warnings=tuple(self._warnings),
        )

    def _path(self, key: str) -> Path | None:
        value = self._get(key)
        return Path(value) if value is not None else None

    def _bool(self, key: str, default: bool) -> bool:
        value = self._get(key)
        parsed = parse_go_bool(value, default)
        if parsed is None:
            self._warnings.append(
                f"{key}={value!r} is not a boolean (true/false, 1/0, yes/no, on/off); using {default}"
            )
            return default
        return parsed

    def _seconds(self, key: str, default: float, *, minimum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        try:
            seconds = float(value) if _is_number(value) else parse_go_duration(value).total_seconds()
        except ValueError:
            raise AgentConfigError(f"{key}={value!r} is not {DURATION_FORM}") from None
        if seconds < minimum:
            raise AgentConfigError(f"{key}={value!r} must be at least {minimum:g}s")
        return seconds

    def _retention(self) -> int:
        key = "CERTCTL_DEPLOY_BACKUP_RETENTION"
        value = self._get(key)
        if value is None:
            return DEFAULT_BACKUP_RETENTION
        try:
            retention = int(value)
        except ValueError:
            raise AgentConfigError(f"{key}={value!r} is not an integer") from None
        if retention < -1:
            raise AgentConfigError(f"{key}={value!r} must be -1 (keep none), 0 (default 3) or a positive count")
        return retention or DEFAULT_BACKUP_RETENTION

    def _log_level(self) -> LogLevel:
        value = self._get("CERTCTL_LOG_LEVEL")
        if value is None:
            return LogLevel.INFO
        level = _LOG_LEVELS.get(value.lower())
        if level is None:
            raise AgentConfigError(f"CERTCTL_LOG_LEVEL={value!r} is not one of debug, info, warn, error")
        return level

    def _log_format(self) -> LogFormat:
        value = self._get("CERTCTL_LOG_FORMAT")
        if value is None:
            return LogFormat.JSON
        try:
            return LogFormat(value.lower())
        except ValueError:
            raise AgentConfigError(f"CERTCTL_LOG_FORMAT={value!r} is not json or text") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value is not None and value.strip() else None
