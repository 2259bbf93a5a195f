"""Every `CERTCTL_*` setting, read once at start-up; a bad value stops the process and names the variable."""

from __future__ import annotations

import os
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from certctl.durations import DURATION_FORM, parse_go_duration
from certctl.errors import ConfigurationError

ENV_PREFIX = "CERTCTL_"


def _duration(value: Any) -> Any:
    return parse_go_duration(value) if isinstance(value, str) else value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _go_bool(value: Any) -> Any:
    # The original accepts true/1/yes; we also accept their opposites and reject anything else.
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false, 1/0, yes/no)")
    return value


GoDuration = Annotated[timedelta, BeforeValidator(_duration)]
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
GoBool = Annotated[bool, BeforeValidator(_go_bool)]


class AuthType(StrEnum):
    API_KEY = "api-key"
    NONE = "none"


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    # Server, database, logging (core.md §10.2)
    data_dir: Path = Field(default=Path("./certctl-data"), description="a directory path")
    database_url: str | None = Field(
        default=None, description="postgresql+psycopg://user@host/db, postgres://… or sqlite:///path"
    )
    database_max_conns: int = Field(default=25, ge=1, le=1000, description="an integer 1-1000")
    server_host: str = Field(default="127.0.0.1", description="a host name or IP address")
    server_port: int = Field(default=8443, ge=1, le=65535, description="a TCP port 1-65535")
    server_tls_cert_path: Path | None = Field(default=None, description="a PEM certificate file path")
    server_tls_key_path: Path | None = Field(default=None, description="a PEM private key file path")
    server_public_url: str = Field(default="", description="an https:// base URL")
    max_body_size: int = Field(default=1_048_576, ge=1024, description="a number of bytes ≥ 1024")
    log_level: LogLevel = Field(default=LogLevel.INFO, description="debug, info, warn or error")
    log_format: LogFormat = Field(default=LogFormat.JSON, description="json or text")
    demo_seed: GoBool = Field(default=False, description="true or false")

    # Auth and security (core.md §10.3)
    auth_type: AuthType = Field(default=AuthType.API_KEY, description="api-key or none")
    auth_secret: SecretStr = Field(default=SecretStr(""), description="a comma-separated list of keys")
    api_keys_named: SecretStr = Field(
        default=SecretStr(""), description="comma-separated name:key[:admin|:operator|:viewer|:auditor]"
    )
    config_encryption_key: SecretStr | None = Field(default=None, description="a passphrase of at least 32 characters")
    cors_origins: CommaList = Field(default_factory=list, description="a comma-separated list of origins")
    rate_limit_enabled: GoBool = Field(default=True, description="true or false")
    rate_limit_rps: float = Field(default=50, gt=0, description="requests per second > 0")
    rate_limit_burst: int = Field(default=100, ge=1, description="an integer ≥ 1")
    rate_limit_per_user_rps: float = Field(default=0, ge=0, description="requests per second, 0 = global")
    rate_limit_per_user_burst: int = Field(default=0, ge=0, description="an integer, 0 = global")

    # Scheduler intervals used by the platform itself
    audit_flush_timeout_seconds: int = Field(default=30, ge=1, description="a number of seconds ≥ 1")
    ready_timeout: GoDuration = Field(default=timedelta(seconds=2), description=DURATION_FORM)

    @field_validator("auth_type", mode="before")
    @classmethod
    def _reject_jwt(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "jwt":
            raise ValueError("jwt is not supported; use api-key, or none behind an authenticating proxy")
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("config_encryption_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("server_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value.rstrip("/")

    @field_validator("api_keys_named")
    @classmethod
    def _named_keys_parse(cls, value: SecretStr) -> SecretStr:
        from certctl.security.apikeys import parse_named_keys

        parse_named_keys(value.get_secret_value())  # raises ValueError with the offending entry
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in the form SQLAlchemy wants; SQLite in the data directory by default."""
        url = self.database_url
        if not url:
            return f"sqlite:///{(self.data_dir / 'certctl.db').resolve()}"
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def auth_disabled_warning(self) -> str | None:
        if self.auth_type is AuthType.NONE:
            return (
                "CERTCTL_AUTH_TYPE=none: the API accepts every request without a key. Use this only for "
                "local development or behind an authenticating proxy."
            )
        return None

    @property
    def tls_pair_configured(self) -> bool:
        return self.server_tls_cert_path is not None or self.server_tls_key_path is not None


def load_settings(**overrides: Any) -> Settings:
    """Read the environment; on a bad value raise ConfigurationError naming each variable and form."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        # Not chained: pydantic's own text repeats every input value, secrets included, in tracebacks.
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    fields = Settings.model_fields
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        env = ENV_PREFIX + name.upper()
        field = fields.get(name)
        accepted = field.description if field and field.description else "see docs/configuration.md"
        raw = os.environ.get(env)
        shown = "(set)" if raw is not None and _is_secret(name) else repr(raw) if raw is not None else "value"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{env}={shown} is invalid: {message}; accepted: {accepted}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("key", "secret", "token", "password"))
