"""`certctl agent` as a command: exit statuses for configuration problems (§A1.1 exit behaviour)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certctl.agent.config import AgentSettings
from certctl.agent.daemon import run_agent
from certctl.cli.main import app


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("CERTCTL_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level  # run_agent installs its own handler
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_a_plaintext_server_url_exits_1_before_any_network_call(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["agent", "--server", "http://cp.example.com", "--key-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "plaintext http://" in result.output


def test_a_bad_variable_exits_1_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTCTL_AGENT_POLL_INTERVAL", "often")
    result = CliRunner().invoke(app, ["agent"])
    assert result.exit_code == 1
    assert "CERTCTL_AGENT_POLL_INTERVAL" in result.output


def test_without_any_credential_the_agent_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = AgentSettings(state_file=tmp_path / "agent.json", key_dir=tmp_path / "keys")
    assert run_agent(settings) == 1
    assert "Register an agent first via POST /api/v1/agents" in capsys.readouterr().err
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700  # the key dir is made at start


def test_a_dry_run_never_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = AgentSettings(
        state_file=tmp_path / "agent.json", key_dir=tmp_path / "keys", bootstrap_token="t", dry_run=True
    )
    assert run_agent(settings) == 1
    assert "--dry-run does not register" in capsys.readouterr().err
    assert not (tmp_path / "agent.json").exists()


def test_a_missing_ca_bundle_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = AgentSettings(
        agent_id="ag-1",
        api_key="k",
        ca_bundle=tmp_path / "absent.pem",
        state_file=tmp_path / "agent.json",
        key_dir=tmp_path / "keys",
    )
    assert run_agent(settings) == 1
    assert "reading CA bundle at" in capsys.readouterr().err
