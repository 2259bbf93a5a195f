"""CERTCTL_* settings (core.md §10): defaults, parsing rules, and errors that name the variable and the form."""

from __future__ import annotations

import hashlib
import os
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from certctl.config import AuthType, LogFormat, LogLevel, load_settings
from certctl.durations import format_go_duration, parse_go_duration
from certctl.errors import ConfigurationError
from certctl.security.apikeys import parse_named_keys
from certctl.security.roles import Role

LONG_KEY = "a-config-encryption-passphrase-of-40-chars"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CERTCTL_"):
            monkeypatch.delenv(name)


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    return str(caught.value)


# --- defaults ----------------------------------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_settings()
    assert loaded.data_dir == Path("./certctl-data")
    assert (loaded.server_host, loaded.server_port) == ("127.0.0.1", 8443)
    assert loaded.database_url is None
    assert loaded.sqlalchemy_url == f"sqlite:///{tmp_path / 'certctl-data' / 'certctl.db'}"
    assert loaded.database_max_conns == 25
    assert loaded.max_body_size == 1_048_576
    assert loaded.auth_type is AuthType.API_KEY
    assert loaded.config_encryption_key is None
    assert loaded.cors_origins == []
    assert (loaded.rate_limit_enabled, loaded.rate_limit_rps, loaded.rate_limit_burst) == (True, 50, 100)
    assert (loaded.log_level, loaded.log_format) == (LogLevel.INFO, LogFormat.JSON)
    assert loaded.demo_seed is False
    assert loaded.auth_disabled_warning is None


def test_the_sqlite_database_lives_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCTL_DATA_DIR", str(tmp_path / "state"))
    loaded = load_settings()
    assert loaded.data_dir == tmp_path / "state"
    assert loaded.sqlalchemy_url == f"sqlite:///{tmp_path / 'state' / 'certctl.db'}"


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("postgres://certctl:pw@db.example:5432/certctl", "postgresql+psycopg://certctl:pw@db.example:5432/certctl"),
        ("postgresql://certctl@db.example/certctl", "postgresql+psycopg://certctl@db.example/certctl"),
        ("postgresql+psycopg://certctl@db.example/certctl", "postgresql+psycopg://certctl@db.example/certctl"),
        ("sqlite:////var/lib/certctl/certctl.db", "sqlite:////var/lib/certctl/certctl.db"),
    ],
)
def test_database_urls_are_rewritten_for_psycopg(
    monkeypatch: pytest.MonkeyPatch, given_url: str, expected: str
) -> None:
    monkeypatch.setenv("CERTCTL_DATABASE_URL", given_url)
    assert load_settings().sqlalchemy_url == expected


def test_empty_strings_count_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "CERTCTL_SERVER_PORT",
        "CERTCTL_SERVER_HOST",
        "CERTCTL_DATABASE_URL",
        "CERTCTL_RATE_LIMIT_ENABLED",
        "CERTCTL_AUTH_TYPE",
        "CERTCTL_CONFIG_ENCRYPTION_KEY",
        "CERTCTL_CORS_ORIGINS",
        "CERTCTL_READY_TIMEOUT",
    ):
        monkeypatch.setenv(name, "")
    loaded = load_settings()
    assert (loaded.server_port, loaded.server_host) == (8443, "127.0.0.1")
    assert loaded.sqlalchemy_url.startswith("sqlite:///")
    assert loaded.rate_limit_enabled is True
    assert loaded.auth_type is AuthType.API_KEY
    assert loaded.config_encryption_key is None
    assert loaded.cors_origins == []
    assert loaded.ready_timeout == timedelta(seconds=2)


def test_values_from_the_environment_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCTL_SERVER_HOST", "10.1.2.3")
    monkeypatch.setenv("CERTCTL_SERVER_PORT", "9443")
    monkeypatch.setenv("CERTCTL_CONFIG_ENCRYPTION_KEY", LONG_KEY)
    monkeypatch.setenv("CERTCTL_AUTH_TYPE", "NONE")
    monkeypatch.setenv("CERTCTL_SERVER_PUBLIC_URL", "https://certctl.example:8443/")
    loaded = load_settings()
    assert (loaded.server_host, loaded.server_port) == ("10.1.2.3", 9443)
    assert loaded.config_encryption_key is not None
    assert loaded.config_encryption_key.get_secret_value() == LONG_KEY
    assert LONG_KEY not in repr(loaded)
    assert loaded.auth_type is AuthType.NONE
    assert loaded.auth_disabled_warning is not None
    assert loaded.server_public_url == "https://certctl.example:8443"


# --- lists and booleans -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example", ["https://a.example"]),
        (" https://a.example , https://b.example:8443 ,, ", ["https://a.example", "https://b.example:8443"]),
        ("*", ["*"]),
        (",", []),
    ],
)
def test_cors_origins_are_a_trimmed_comma_list(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CERTCTL_CORS_ORIGINS", value)
    assert load_settings().cors_origins == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("TRUE", True), ("false", False), ("0", False), ("No", False)],
)
def test_booleans(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CERTCTL_RATE_LIMIT_ENABLED", value)
    assert load_settings().rate_limit_enabled is expected


# --- Go durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("2m", timedelta(minutes=2)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("168h", timedelta(days=7)),
        ("1m30.5s", timedelta(seconds=90, milliseconds=500)),
        ("10us", timedelta(microseconds=10)),
        ("1h1ms", timedelta(hours=1, milliseconds=1)),
        ("1000000h0.000001s", timedelta(hours=1_000_000, microseconds=1)),
        (" 45s ", timedelta(seconds=45)),
        ("1.h", timedelta(hours=1)),
        (".5m", timedelta(seconds=30)),
    ],
)
def test_go_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "s", "1x", "1h 30m", "-5s", "1e3s", "h1", "30 s", ".h", "1..5s"])
def test_malformed_durations_are_refused_naming_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="Go-style duration such as 30s"):
        parse_go_duration(text)


def test_an_absurdly_long_duration_is_a_value_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_go_duration("99999999999999h")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=2, seconds=5), "2h5s"),
        (timedelta(days=1), "24h"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(microseconds=7), "7us"),
        (timedelta(minutes=1, milliseconds=500), "1m0.5s"),
        (timedelta(seconds=-5), "-5s"),
    ],
)
def test_durations_format_in_go_style(value: timedelta, text: str) -> None:
    assert format_go_duration(value) == text


@settings(deadline=None)
@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=100_000)))
@example(timedelta(milliseconds=250))
@example(timedelta(hours=1, microseconds=1))
def test_formatted_durations_parse_back_to_the_same_value(value: timedelta) -> None:
    assert parse_go_duration(format_go_duration(value)) == value


@given(
    hours=st.integers(0, 10_000),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
)
def test_canonical_spellings_survive_a_round_trip(hours: int, minutes: int, seconds: int) -> None:
    text = "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n) or "0s"
    assert format_go_duration(parse_go_duration(text)) == text


def test_a_duration_setting_reads_go_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCTL_READY_TIMEOUT", "1m30s")
    assert load_settings().ready_timeout == timedelta(seconds=90)


# --- invalid values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CERTCTL_SERVER_PORT", "abc", "accepted: a TCP port 1-65535"),
        ("CERTCTL_SERVER_PORT", "70000", "accepted: a TCP port 1-65535"),
        ("CERTCTL_SERVER_PORT", "0", "accepted: a TCP port 1-65535"),
        ("CERTCTL_RATE_LIMIT_ENABLED", "maybe", "'maybe' is not a boolean (true/false, 1/0, yes/no)"),
        ("CERTCTL_AUTH_TYPE", "jwt", "jwt is not supported"),
        ("CERTCTL_AUTH_TYPE", "basic", "accepted: api-key or none"),
        ("CERTCTL_READY_TIMEOUT", "soon", "accepted: a Go-style duration such as 30s, 2m, 1h or 1h30m"),
        ("CERTCTL_READY_TIMEOUT", "99999999999999h", "too long a duration"),
        ("CERTCTL_MAX_BODY_SIZE", "100", "accepted: a number of bytes ≥ 1024"),
        ("CERTCTL_DATABASE_MAX_CONNS", "0", "accepted: an integer 1-1000"),
        ("CERTCTL_RATE_LIMIT_RPS", "-1", "accepted: requests per second > 0"),
        ("CERTCTL_LOG_LEVEL", "verbose", "accepted: debug, info, warn or error"),
        ("CERTCTL_SERVER_PUBLIC_URL", "certctl.example", "must start with https:// or http://"),
    ],
)
def test_an_invalid_value_names_the_variable_the_value_and_the_accepted_form(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    message = refused(monkeypatch, **{name: value})
    assert f"{name}={value!r} is invalid" in message
    assert expected in message


def test_every_invalid_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(monkeypatch, CERTCTL_SERVER_PORT="abc", CERTCTL_RATE_LIMIT_ENABLED="maybe")
    assert "CERTCTL_SERVER_PORT='abc'" in message
    assert "CERTCTL_RATE_LIMIT_ENABLED='maybe'" in message


def test_a_short_encryption_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-is-not-long-enough"
    monkeypatch.setenv("CERTCTL_CONFIG_ENCRYPTION_KEY", secret)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "CERTCTL_CONFIG_ENCRYPTION_KEY=(set) is invalid: must be at least 32 characters" in message
    assert "accepted: a passphrase of at least 32 characters" in message
    assert secret not in message
    # Nor in the traceback a crash log would print (pydantic's own error text repeats every input).
    assert secret not in "".join(traceback.format_exception(caught.value))


def test_an_encryption_key_of_exactly_32_characters_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCTL_CONFIG_ENCRYPTION_KEY", "k" * 32)
    key = load_settings().config_encryption_key
    assert key is not None
    assert key.get_secret_value() == "k" * 32


@pytest.mark.parametrize(
    ("value", "reason", "secret"),
    [
        ("alice", "entry 1 must be name:key or name:key:role", None),
        ("ops:key-ops-1,alice:key:admin:extra", "entry 2 must be name:key or name:key:role", "key-ops-1"),
        ("bad name:key-bad-1", "entry 1: key name 'bad name' must match [A-Za-z0-9_-]+", "key-bad-1"),
        ("alice:", "entry 1 (alice): the key is empty", None),
        (
            "alice:key-alice-1:root",
            "entry 1 (alice): role 'root' is not admin, operator, viewer or auditor",
            "key-alice-1",
        ),
        (
            "alice:key-a-1:admin,alice:key-a-2:viewer",
            "entry 2 (alice): the same name appears with different roles",
            "key-a-2",
        ),
        ("alice:key-a-1,alice:key-a-1", "entry 2 (alice): duplicate name and key", "key-a-1"),
    ],
)
def test_malformed_named_keys_give_the_reason_but_never_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str, secret: str | None
) -> None:
    monkeypatch.setenv("CERTCTL_API_KEYS_NAMED", value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "CERTCTL_API_KEYS_NAMED=(set) is invalid: " + reason in message
    assert "accepted: comma-separated name:key[:admin|:operator|:viewer|:auditor]" in message
    if secret is not None:
        assert secret not in message
        assert secret not in "".join(traceback.format_exception(caught.value))


def test_well_formed_named_keys_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCTL_API_KEYS_NAMED", " alice:key-a-1:admin , bob:key-b-1 , ,carol:key-c-1:VIEWER")
    entries = parse_named_keys(load_settings().api_keys_named.get_secret_value())
    assert [(e.name, e.role) for e in entries] == [
        ("alice", Role.ADMIN),
        ("bob", Role.OPERATOR),
        ("carol", Role.VIEWER),
    ]
    assert entries[0].key_hash == hashlib.sha256(b"key-a-1").hexdigest()


# --- notifications -------------------------------------------------------------------------------------


def test_notification_intervals_default_and_refuse_less_than_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_settings()
    assert loaded.notification_retry_interval == timedelta(minutes=2)
    assert loaded.scheduler_notification_process_interval == timedelta(minutes=1)
    message = refused(monkeypatch, CERTCTL_NOTIFICATION_RETRY_INTERVAL="500ms")
    assert "CERTCTL_NOTIFICATION_RETRY_INTERVAL" in message
    assert "at least 1s" in message
    monkeypatch.delenv("CERTCTL_NOTIFICATION_RETRY_INTERVAL")
    assert "CERTCTL_NOTIFICATION_RETRY_INTERVAL" in refused(monkeypatch, CERTCTL_NOTIFICATION_RETRY_INTERVAL="soon")
    monkeypatch.delenv("CERTCTL_NOTIFICATION_RETRY_INTERVAL")
    process = refused(monkeypatch, CERTCTL_SCHEDULER_NOTIFICATION_PROCESS_INTERVAL="0s")
    assert "CERTCTL_SCHEDULER_NOTIFICATION_PROCESS_INTERVAL" in process


@pytest.mark.parametrize(
    ("port", "use_tls", "mode", "expected"),
    [
        ("587", "true", None, "starttls"),
        ("465", "true", None, "implicit"),
        ("25", "false", None, "none"),
        ("465", "true", "starttls", "starttls"),
    ],
)
def test_smtp_tls_mode_is_derived_unless_set(
    monkeypatch: pytest.MonkeyPatch, port: str, use_tls: str, mode: str | None, expected: str
) -> None:
    monkeypatch.setenv("CERTCTL_SMTP_PORT", port)
    monkeypatch.setenv("CERTCTL_SMTP_USE_TLS", use_tls)
    if mode:
        monkeypatch.setenv("CERTCTL_SMTP_TLS_MODE", mode)
    assert load_settings().smtp_effective_tls_mode == expected


def test_invalid_pagerduty_severity_and_opsgenie_priority_stop_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "info, warning, error or critical" in refused(monkeypatch, CERTCTL_PAGERDUTY_SEVERITY="sev1")
    monkeypatch.delenv("CERTCTL_PAGERDUTY_SEVERITY")
    assert "P1, P2, P3, P4 or P5" in refused(monkeypatch, CERTCTL_OPSGENIE_PRIORITY="P9")
