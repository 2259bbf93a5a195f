"""`certctl agents …`: the agent registry over the REST API (the agent process itself is `certctl agent`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from certctl.cli.client import RestClient
from certctl.cli.common import group_callback, rest_command
from certctl.cli.output import OutputFormat, print_fields, print_json, print_table

app = typer.Typer(help="Registered agents: list, register, retire, rotate a credential.", no_args_is_help=True)
app.callback()(group_callback)


def _show(agent: dict[str, Any]) -> None:
    print_fields(
        [
            ("ID", agent["id"]),
            ("Name", agent["name"]),
            ("Hostname", agent["hostname"]),
            ("Status", agent["status"]),
            ("Last Heartbeat", agent.get("last_heartbeat_at")),
            ("OS / Arch", f"{agent.get('os') or '-'} / {agent.get('architecture') or '-'}"),
            ("IP Address", agent.get("ip_address")),
            ("Version", agent.get("version")),
            ("Retired At", agent.get("retired_at")),
            ("Retired Reason", agent.get("retired_reason")),
        ]
    )


def _show_credential(agent: dict[str, Any]) -> None:
    _show(agent)
    typer.echo(f"\nAgent credential (shown once; give it to the agent as CERTCTL_API_KEY):\n{agent['api_key']}")


@rest_command(app, "list")
def list_agents(
    client: RestClient,
    output: OutputFormat,
    retired: Annotated[bool, typer.Option("--retired", help="list retired agents instead")] = False,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=500)] = 50,
) -> None:
    """List agents, newest first."""
    path = "/api/v1/agents/retired" if retired else "/api/v1/agents"
    body = client.json("GET", path, params={"page": page, "per_page": per_page})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_table(
        ["ID", "NAME", "HOSTNAME", "STATUS", "LAST HEARTBEAT"],
        [(a["id"], a["name"], a["hostname"], a["status"], a.get("last_heartbeat_at") or "-") for a in body["data"]],
    )
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(app, "get")
def get_agent(client: RestClient, output: OutputFormat, agent_id: Annotated[str, typer.Argument(help="ID")]) -> None:
    """Show one agent."""
    agent = client.json("GET", f"/api/v1/agents/{agent_id}")
    print_json(agent) if output is OutputFormat.JSON else _show(agent)


@rest_command(app, "register")
def register_agent(
    client: RestClient,
    output: OutputFormat,
    name: Annotated[str, typer.Argument(help="unique agent name")],
    hostname: Annotated[str, typer.Option(help="the host the agent runs on")],
) -> None:
    """Register an agent and print its credential (shown once)."""
    agent = client.json("POST", "/api/v1/agents", json={"name": name, "hostname": hostname})
    print_json(agent) if output is OutputFormat.JSON else _show_credential(agent)


@rest_command(app, "rotate-key")
def rotate_key(client: RestClient, output: OutputFormat, agent_id: Annotated[str, typer.Argument(help="ID")]) -> None:
    """Replace an agent's credential (admin); the old one stops working at once."""
    agent = client.json("POST", f"/api/v1/agents/{agent_id}/rotate-key")
    print_json(agent) if output is OutputFormat.JSON else _show_credential(agent)


@rest_command(app, "retire")
def retire_agent(
    client: RestClient,
    output: OutputFormat,
    agent_id: Annotated[str, typer.Argument(help="ID")],
    force: Annotated[bool, typer.Option("--force", help="also retire its targets and cancel its jobs")] = False,
    reason: Annotated[str, typer.Option(help="required with --force")] = "",
) -> None:
    """Retire an agent: it stops at its next heartbeat or poll."""
    params: dict[str, str] = {"reason": reason} | ({"force": "true"} if force else {})
    body = client.json("DELETE", f"/api/v1/agents/{agent_id}", params=params)
    if output is OutputFormat.JSON:
        print_json(body)
    elif not body:  # 204: nothing to do
        typer.echo(f"Agent {agent_id} was already retired")
    else:
        counts = ", ".join(f"{key} {value}" for key, value in body["counts"].items())
        suffix = f" (cascaded: {counts})" if body["cascade"] else ""
        typer.echo(f"Agent {agent_id} retired{suffix}")
