"""`certctl agents …` against a real HTTPS server: register (credential shown once), list, retire."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from certctl.cli.main import app as cli
from certctl.context import AppContext


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_register_list_rotate_and_retire_an_agent(served: tuple[AppContext, dict[str, str]]) -> None:
    context, env = served
    registered = run(env, "agents", "register", "edge-1", "--hostname", "edge-1.example.test", "--output", "json")
    assert registered.exit_code == 0, registered.output
    agent = json.loads(registered.output)
    assert context.agents.authenticate(agent["api_key"]) is not None

    listed = run(env, "agents", "list")
    assert listed.exit_code == 0, listed.output
    assert agent["id"] in listed.output
    assert agent["api_key"] not in listed.output

    rotated = run(env, "agents", "rotate-key", agent["id"])
    assert rotated.exit_code == 0, rotated.output
    assert "shown once" in rotated.output
    assert context.agents.authenticate(agent["api_key"]) is None  # the old credential is dead

    retired = run(env, "agents", "retire", agent["id"], "--reason", "host decommissioned")
    assert retired.exit_code == 0, retired.output
    assert f"Agent {agent['id']} retired" in retired.output
    assert "already retired" in run(env, "agents", "retire", agent["id"]).output
    assert agent["id"] in run(env, "agents", "list", "--retired").output

    refused = run(env, "agents", "retire", "server-scanner")
    assert refused.exit_code != 0
