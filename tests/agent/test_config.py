"""Agent settings: URL checks, booleans, the config file and precedence (§A1.1, A4 cases 16 and 24)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from certctl.agent.config import (
    DEFAULT_KEY_DIR,
    DEFAULT_STATE_FILE,
    AgentSettings,
    check_server_url,
    load_agent_settings,
    parse_go_bool,
    read_env_file,
)
from certctl.agent.errors import AgentConfigError
from certctl.config import LogFormat, LogLevel


@pytest.mark.parametrize(
    "url",
    ["https://certctl.example.com:8443", "HTTPS://certctl.example.com", "https://certctl.example.com/prefix/"],
)
def test_https_urls_are_accepted_and_normalised(url: str) -> None:
    checked = check_server_url(url)
    assert checked.startswith("https://")
    assert not checked.endswith("/")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "CERTCTL_SERVER_URL is empty"),
        ("   ", "CERTCTL_SERVER_URL is empty"),
        ("http://certctl.example.com", "plaintext http://"),
        ("localhost:8443", "unsupported scheme"),
        ("//host:8443", "missing a scheme"),
        ("ftp://host", "unsupported scheme"),
        ("ws://host", "unsupported scheme"),
        ("https://", "has no host"),
    ],
)
def test_bad_server_urls_are_refused_before_any_network_call(url: str, message: str) -> None:
    with pytest.raises(AgentConfigError, match=message):
        check_server_url(url)


@pytest.mark.parametrize("value", ["1", "t", "true", "yes", "on", "TRUE", "True", " on "])
def test_true_spellings(value: str) -> None:
    assert parse_go_bool(value, False) is True


@pytest.mark.parametrize("value", ["0", "f", "false", "no", "off", "OFF"])
def test_false_spellings(value: str) -> None:
    assert parse_go_bool(value, True) is False


@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_or_empty_boolean_takes_the_default(value: str | None) -> None:
    assert parse_go_bool(value, True) is True
    assert parse_go_bool(value, False) is False


def test_unrecognised_boolean_takes_the_default_with_a_warning() -> None:
    settings = load_agent_settings({}, {"CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY": "maybe"})
    assert settings.insecure_skip_verify is False
    assert any("CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY" in w for w in settings.warnings)


def test_defaults() -> None:
    settings = load_agent_settings({}, {})
    assert settings == AgentSettings()
    assert settings.server_url == "https://localhost:8443"
    assert settings.state_file == DEFAULT_STATE_FILE
    assert settings.key_dir == DEFAULT_KEY_DIR
    assert (settings.heartbeat_interval_seconds, settings.poll_interval_seconds) == (60.0, 30.0)
    assert (settings.verify_delay_seconds, settings.verify_timeout_seconds) == (2.0, 10.0)
    assert settings.deploy_backup_retention == 3
    assert settings.verify_deployment is True
    assert (settings.log_level, settings.log_format) == (LogLevel.INFO, LogFormat.JSON)


def test_set_but_empty_variables_count_as_unset() -> None:
    settings = load_agent_settings({}, {"CERTCTL_SERVER_URL": "", "CERTCTL_AGENT_ID": "  ", "CERTCTL_API_KEY": ""})
    assert settings.server_url == "https://localhost:8443"
    assert settings.agent_id is None
    assert settings.api_key is None


def test_every_variable_is_read() -> None:
    env = {
        "CERTCTL_SERVER_URL": "https://cp.example.com:9443/",
        "CERTCTL_API_KEY": "k",
        "CERTCTL_AGENT_ID": "ag-1",
        "CERTCTL_AGENT_NAME": "web-1",
        "CERTCTL_AGENT_BOOTSTRAP_TOKEN": "boot",
        "CERTCTL_AGENT_STATE_FILE": "/srv/agent.json",
        "CERTCTL_KEY_DIR": "/srv/keys",
        "CERTCTL_DISCOVERY_DIRS": " /etc/ssl , ,/srv/certs,",
        "CERTCTL_SERVER_CA_BUNDLE_PATH": "/srv/ca.pem",
        "CERTCTL_SERVER_TLS_INSECURE_SKIP_VERIFY": "yes",
        "CERTCTL_VERIFY_DEPLOYMENT": "off",
        "CERTCTL_VERIFY_DELAY": "500ms",
        "CERTCTL_VERIFY_TIMEOUT": "3",
        "CERTCTL_DEPLOY_BACKUP_RETENTION": "-1",
        "CERTCTL_AGENT_HEARTBEAT_INTERVAL": "2s",
        "CERTCTL_AGENT_POLL_INTERVAL": "1s",
        "CERTCTL_LOG_LEVEL": "DEBUG",
        "CERTCTL_LOG_FORMAT": "text",
    }
    settings = load_agent_settings({}, env)
    assert settings.server_url == "https://cp.example.com:9443"
    assert (settings.api_key, settings.agent_id, settings.agent_name) == ("k", "ag-1", "web-1")
    assert settings.bootstrap_token == "boot"
    assert settings.state_file == Path("/srv/agent.json")
    assert settings.key_dir == Path("/srv/keys")
    assert settings.discovery_dirs == ("/etc/ssl", "/srv/certs")
    assert settings.ca_bundle == Path("/srv/ca.pem")
    assert settings.insecure_skip_verify is True
    assert settings.verify_deployment is False
    assert (settings.verify_delay_seconds, settings.verify_timeout_seconds) == (0.5, 3.0)
    assert settings.deploy_backup_retention == -1
    assert (settings.heartbeat_interval_seconds, settings.poll_interval_seconds) == (2.0, 1.0)
    assert (settings.log_level, settings.log_format) == (LogLevel.DEBUG, LogFormat.TEXT)


def test_secrets_stay_out_of_the_repr() -> None:
    settings = load_agent_settings({}, {"CERTCTL_API_KEY": "s3cret-key", "CERTCTL_AGENT_BOOTSTRAP_TOKEN": "s3cret-tok"})
    assert "s3cret" not in repr(settings)


def test_flags_override_environment_which_overrides_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        "# written by the installer\n"
        "CERTCTL_SERVER_URL=https://from-file.example.com\n"
        "export CERTCTL_AGENT_ID='ag-file'\n"
        'CERTCTL_KEY_DIR="/from/file"\n'
        "CERTCTL_AGENT_NAME=file-name\n"
        "\n"
    )
    env = {"CERTCTL_AGENT_ID": "ag-env", "CERTCTL_AGENT_NAME": "env-name"}
    flags: dict[str, str | bool | None] = {"CERTCTL_AGENT_NAME": "flag-name", "CERTCTL_KEY_DIR": None}
    settings = load_agent_settings(flags, env, env_file)
    assert settings.server_url == "https://from-file.example.com"
    assert settings.agent_id == "ag-env"
    assert settings.agent_name == "flag-name"
    assert settings.key_dir == Path("/from/file")


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "agent.env"
    env_file.write_text("CERTCTL_AGENT_POLL_INTERVAL=5s\n")
    settings = load_agent_settings({}, {"CERTCTL_AGENT_CONFIG": str(env_file)})
    assert settings.poll_interval_seconds == 5.0


def test_boolean_flags_override_the_environment() -> None:
    settings = load_agent_settings({"CERTCTL_VERIFY_DEPLOYMENT": False}, {"CERTCTL_VERIFY_DEPLOYMENT": "true"})
    assert settings.verify_deployment is False


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="reading config file"):
        load_agent_settings({}, {}, tmp_path / "absent.env")


def test_a_malformed_config_line_names_file_and_line(tmp_path: Path) -> None:
    env_file = tmp_path / "agent.env"
    env_file.write_text("CERTCTL_AGENT_ID=ag-1\nthis is not an assignment\n")
    with pytest.raises(AgentConfigError, match=r"agent\.env:2"):
        read_env_file(env_file)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CERTCTL_AGENT_POLL_INTERVAL": "soon"}, "CERTCTL_AGENT_POLL_INTERVAL"),
        ({"CERTCTL_AGENT_HEARTBEAT_INTERVAL": "0s"}, "must be at least"),
        ({"CERTCTL_VERIFY_DELAY": "-1s"}, "CERTCTL_VERIFY_DELAY"),
        ({"CERTCTL_DEPLOY_BACKUP_RETENTION": "three"}, "not an integer"),
        ({"CERTCTL_DEPLOY_BACKUP_RETENTION": "-2"}, "keep none"),
        ({"CERTCTL_LOG_LEVEL": "loud"}, "CERTCTL_LOG_LEVEL"),
        ({"CERTCTL_LOG_FORMAT": "xml"}, "CERTCTL_LOG_FORMAT"),
        ({"CERTCTL_SERVER_URL": "http://cp"}, "plaintext"),
    ],
)
def test_bad_values_stop_the_agent_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(AgentConfigError, match=message):
        load_agent_settings({}, env)


def test_the_default_retention_is_the_deploy_packages() -> None:
    from certctl.agent.config import DEFAULT_BACKUP_RETENTION
    from certctl.deploy.plan import DEFAULT_BACKUP_RETENTION as DEPLOY_DEFAULT

    assert DEFAULT_BACKUP_RETENTION == DEPLOY_DEFAULT


def test_zero_retention_means_the_default() -> None:
    assert load_agent_settings({}, {"CERTCTL_DEPLOY_BACKUP_RETENTION": "0"}).deploy_backup_retention == 3


def test_every_agent_variable_is_documented() -> None:
    root = Path(__file__).resolve().parents[2]
    source = (root / "src" / "certctl" / "agent" / "config.py").read_text()
    docs = (root / "docs" / "agent.md").read_text()
    example = (root / "packaging" / "agent.env.example").read_text()
    variables = sorted(set(re.findall(r"CERTCTL_[A-Z_]+[A-Z]", source)))
    assert len(variables) > 15
    assert [v for v in variables if v not in docs] == []
    assert [
        v
        for v in variables
        if v not in example and v not in ("CERTCTL_AGENT_CONFIG", "CERTCTL_AGENT_DRY_RUN", "CERTCTL_DISCOVERY_DIRS")
    ] == []
