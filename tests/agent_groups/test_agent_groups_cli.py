"""`certctl agent-groups …` against a real HTTPS server (the REST CLI tests' `served` fixture)."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from certctl.agent_groups.membership import MembershipType
from certctl.agent_groups.service import AgentGroupService, AgentGroupSpec
from certctl.cli.main import app as cli
from certctl.context import AppContext
from certctl.security.roles import SYSTEM_ACTOR
from tests.agent_groups.rows import insert_agent
from tests.cli.conftest import served  # noqa: F401  (fixture)


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_list_get_and_members(served: tuple[AppContext, dict[str, str]]) -> None:  # noqa: F811
    context, env = served
    insert_agent(context, "ag-web", ip_address="10.0.1.77", version="2.0.14")
    insert_agent(context, "ag-db", ip_address="10.0.2.1", version="2.0.14")
    insert_agent(context, "ag-mac", os="darwin", architecture="arm64", ip_address="10.0.7.5")

    groups = AgentGroupService(context.db, context.clock)
    groups.create(AgentGroupSpec(id="ag-dc-a", name="Datacenter A", match_ip_cidr="10.0.1.0/24"), SYSTEM_ACTOR)
    groups.set_member("ag-dc-a", "ag-mac", MembershipType.INCLUDE, SYSTEM_ACTOR)

    listed = run(env, "agent-groups", "list")
    assert listed.exit_code == 0, listed.output
    assert "ag-dc-a" in listed.output
    assert "cidr=10.0.1.0/24" in listed.output
    assert "Total: 1" in listed.output

    shown = run(env, "agent-groups", "get", "ag-dc-a")
    assert shown.exit_code == 0, shown.output
    assert "10.0.1.0/24" in shown.output
    assert "Datacenter A" in shown.output

    found = run(env, "agent-groups", "members", "ag-dc-a")
    assert found.exit_code == 0, found.output
    rows = {line.split()[0]: line.split()[-1] for line in found.output.splitlines() if line.startswith("ag-")}
    assert rows == {"ag-mac": "include", "ag-web": "dynamic"}
    assert "Total: 2" in found.output

    as_json = json.loads(run(env, "agent-groups", "members", "ag-dc-a", "--membership", "include", "--json").output)
    assert [(a["id"], a["membership"]) for a in as_json["data"]] == [("ag-mac", "include")]

    missing = run(env, "agent-groups", "get", "ag-nope")
    assert missing.exit_code == 1
    assert "not found" in missing.output.lower()
