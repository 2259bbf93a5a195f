"""Every `CERTCTL_*` setting, read once at start-up; a bad value stops the process and names the variable."""

from __future__ import annotations

import os
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from certctl.durations import DURATION_FORM, format_go_duration, parse_go_duration
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


class KeygenMode(StrEnum):
    AGENT = "agent"  # the agent makes the key and sends a CSR: keys never touch the control plane (default)
    SERVER = "server"  # the server makes the key and keeps it encrypted at rest


class SmtpTlsMode(StrEnum):
    IMPLICIT = "implicit"  # SMTPS: TLS from the first byte (port 465)
    STARTTLS = "starttls"  # plain connect, then STARTTLS; a refused upgrade is an error, never a downgrade
    NONE = "none"


class PagerDutySeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class OpsGeniePriority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"
    P5 = "P5"


def _at_least(minimum: timedelta) -> Any:
    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise ValueError(f"must be at least {format_go_duration(minimum)}")
        return value

    return AfterValidator(check)


Interval = Annotated[timedelta, BeforeValidator(_duration), _at_least(timedelta(seconds=1))]


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
    server_public_url: str = Field(
        default="",
        validation_alias=AliasChoices("CERTCTL_SERVER_PUBLIC_URL", "CERTCTL_PUBLIC_URL", "server_public_url"),
        description="an https:// base URL (also read from CERTCTL_PUBLIC_URL)",
    )
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
    agent_bootstrap_token: SecretStr = Field(
        default=SecretStr(""), description="a shared token agents present to register themselves"
    )
    cors_origins: CommaList = Field(default_factory=list, description="a comma-separated list of origins")
    rate_limit_enabled: GoBool = Field(default=True, description="true or false")
    rate_limit_rps: float = Field(default=50, gt=0, description="requests per second > 0")
    rate_limit_burst: int = Field(default=100, ge=1, description="an integer ≥ 1")
    rate_limit_per_user_rps: float = Field(default=0, ge=0, description="requests per second, 0 = global")
    rate_limit_per_user_burst: int = Field(default=0, ge=0, description="an integer, 0 = global")

    cert_export_rate_limit_per_actor_hr: int = Field(default=50, ge=0, description="exports per hour, 0 = no limit")
    keygen_mode: KeygenMode = Field(default=KeygenMode.AGENT, description="agent or server")

    # Local CA (core.md §10.7): sub-CA mode for the default iss-local issuer when both are set
    ca_cert_path: Path | None = Field(default=None, description="a PEM CA certificate file path")
    ca_key_path: Path | None = Field(default=None, description="a PEM CA private key file path (mode 0600)")

    # Scheduler and jobs (core.md §10.4); every interval is a Go-style duration of at least 1 s
    scheduler_enabled: GoBool = Field(default=True, description="true or false (false: API only, no loops)")
    scheduler_renewal_check_interval: Annotated[Interval, _at_least(timedelta(minutes=1))] = Field(
        default=timedelta(hours=1), description=f"{DURATION_FORM}, at least 1m"
    )
    scheduler_job_processor_interval: Interval = Field(default=timedelta(seconds=30), description=DURATION_FORM)
    scheduler_retry_interval: Interval = Field(default=timedelta(minutes=5), description=DURATION_FORM)
    job_timeout_interval: Interval = Field(default=timedelta(minutes=10), description=DURATION_FORM)
    short_lived_expiry_check_interval: Interval = Field(default=timedelta(seconds=30), description=DURATION_FORM)
    job_awaiting_csr_timeout: Interval = Field(default=timedelta(hours=24), description=DURATION_FORM)
    job_awaiting_approval_timeout: Interval = Field(default=timedelta(hours=168), description=DURATION_FORM)
    job_retry_backoff_cap: Interval = Field(default=timedelta(hours=24), description=DURATION_FORM)
    # Online agents silent for longer than this interval are marked Offline by the agent-health loop.
    scheduler_agent_health_check_interval: Interval = Field(default=timedelta(minutes=2), description=DURATION_FORM)
    renewal_concurrency: int = Field(default=25, ge=1, le=1000, description="an integer 1-1000")
    metrics_per_certificate: GoBool = Field(default=False, description="true or false")

    # Notifications (notifications.md §11): delivery loops, claims, channels, digest
    notification_retry_interval: Interval = Field(default=timedelta(minutes=2), description=DURATION_FORM)
    scheduler_notification_process_interval: Interval = Field(default=timedelta(minutes=1), description=DURATION_FORM)
    notification_claim_lease: Annotated[Interval, _at_least(timedelta(seconds=30))] = Field(
        default=timedelta(minutes=5), description=f"{DURATION_FORM}, at least 30s (longer than any send)"
    )
    notification_batch_size: int = Field(default=500, ge=1, le=10_000, description="an integer 1-10000")
    notification_send_concurrency: int = Field(default=16, ge=1, le=256, description="an integer 1-256")
    outbound_allow_loopback: GoBool = Field(
        default=False, description="true or false (true only for development and tests: loopback URLs allowed)"
    )
    smtp_host: str = Field(default="", description="an SMTP server host name or IP address")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="a TCP port 1-65535")
    smtp_username: str = Field(default="", description="an SMTP user name")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="an SMTP password")
    smtp_from_address: str = Field(default="", description="an e-mail address")
    smtp_use_tls: GoBool = Field(default=True, description="true or false")
    smtp_tls_mode: SmtpTlsMode | None = Field(
        default=None, description="implicit, starttls or none (default: implicit on port 465, else starttls)"
    )
    slack_webhook_url: str = Field(default="", description="an https:// Slack incoming-webhook URL")
    slack_channel: str = Field(default="", description="a Slack channel name")
    slack_username: str = Field(default="certctl", description="a Slack user name")
    teams_webhook_url: str = Field(default="", description="an https:// Teams incoming-webhook URL")
    pagerduty_routing_key: SecretStr = Field(default=SecretStr(""), description="a PagerDuty Events v2 routing key")
    pagerduty_severity: PagerDutySeverity = Field(
        default=PagerDutySeverity.WARNING, description="info, warning, error or critical"
    )
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="the PagerDuty Events v2 enqueue URL"
    )
    opsgenie_api_key: SecretStr = Field(default=SecretStr(""), description="an OpsGenie API key")
    opsgenie_priority: OpsGeniePriority = Field(default=OpsGeniePriority.P3, description="P1, P2, P3, P4 or P5")
    opsgenie_api_url: str = Field(
        default="https://api.opsgenie.com/v2/alerts", description="the OpsGenie Alert API v2 URL"
    )
    webhook_url: str = Field(default="", description="an http(s):// URL that receives JSON events")
    webhook_secret: SecretStr = Field(default=SecretStr(""), description="an HMAC-SHA256 signing secret")
    webhook_headers: CommaList = Field(default_factory=list, description="a comma-separated list of Name=Value headers")
    digest_enabled: GoBool = Field(default=False, description="true or false (needs the SMTP settings)")
    digest_interval: Interval = Field(default=timedelta(hours=24), description=DURATION_FORM)
    digest_recipients: CommaList = Field(default_factory=list, description="a comma-separated list of e-mail addresses")

    # Revocation and trust (pki.md §A2): CRLs, the OCSP responder, the plain-HTTP distribution point
    crl_generation_interval: Interval = Field(default=timedelta(hours=1), description=DURATION_FORM)
    ocsp_responder_validity: Annotated[Interval, _at_least(timedelta(hours=1))] = Field(
        default=timedelta(days=30), description=f"{DURATION_FORM}, at least 1h"
    )
    ocsp_responder_rotation_grace: Interval = Field(default=timedelta(days=7), description=DURATION_FORM)
    ocsp_rate_limit_per_ip_min: int = Field(default=1000, ge=0, description="requests per minute per IP, 0 = off")
    pki_http_port: int = Field(
        default=0, ge=0, le=65535, description="a TCP port for plain-HTTP CRL/OCSP/CA certificates, 0 = off"
    )

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
    def smtp_effective_tls_mode(self) -> SmtpTlsMode:
        """CERTCTL_SMTP_TLS_MODE when set; else none without TLS, implicit on 465, STARTTLS elsewhere."""
        if self.smtp_tls_mode is not None:
            return self.smtp_tls_mode
        if not self.smtp_use_tls:
            return SmtpTlsMode.NONE
        return SmtpTlsMode.IMPLICIT if self.smtp_port == 465 else SmtpTlsMode.STARTTLS

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
        env = name.upper() if name.upper().startswith(ENV_PREFIX) else ENV_PREFIX + name.upper()
        field = fields.get(name) or fields.get(env.removeprefix(ENV_PREFIX).lower())
        accepted = field.description if field and field.description else "see docs/configuration.md"
        raw = os.environ.get(env)
        shown = "(set)" if raw is not None and _is_secret(name) else repr(raw) if raw is not None else "value"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{env}={shown} is invalid: {message}; accepted: {accepted}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("key", "secret", "token", "password"))
