"""`certctl agent-groups …`: agent groups and their evaluated members over the REST API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from certctl.cli.client import RestClient
from certctl.cli.common import group_callback, rest_command
from certctl.cli.output import OutputFormat, print_fields, print_json, print_table

app = typer.Typer(help="Agent groups: dynamic criteria plus manual includes and excludes.", no_args_is_help=True)
app.callback()(group_callback)

PageOpt = Annotated[int, typer.Option(min=1)]
PerPageOpt = Annotated[int, typer.Option("--per-page", min=1, max=500)]


def criteria(group: dict[str, Any]) -> str:
    """The non-empty criteria in one cell, as the UI's Match Criteria column shows them."""
    labels = (
        ("os", "match_os"),
        ("arch", "match_architecture"),
        ("cidr", "match_ip_cidr"),
        ("version", "match_version"),
    )
    shown = [f"{label}={group[field]}" for label, field in labels if group.get(field)]
    return " ".join(shown) or "(manual only)"


@rest_command(app, "list")
def list_groups(client: RestClient, output: OutputFormat, page: PageOpt = 1, per_page: PerPageOpt = 50) -> None:
    """List agent groups by name."""
    body = client.json("GET", "/api/v1/agent-groups", params={"page": page, "per_page": per_page})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_table(
        ["ID", "NAME", "CRITERIA", "ENABLED"],
        [(g["id"], g["name"], criteria(g), "yes" if g["enabled"] else "no") for g in body["data"]],
    )
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(app, "get")
def get_group(client: RestClient, output: OutputFormat, group_id: Annotated[str, typer.Argument(help="ID")]) -> None:
    """Show one agent group."""
    group = client.json("GET", f"/api/v1/agent-groups/{group_id}")
    if output is OutputFormat.JSON:
        print_json(group)
        return
    print_fields(
        [
            ("ID", group["id"]),
            ("Name", group["name"]),
            ("Description", group["description"]),
            ("OS", group["match_os"]),
            ("Architecture", group["match_architecture"]),
            ("IP CIDR", group["match_ip_cidr"]),
            ("Version", group["match_version"]),
            ("Enabled", "yes" if group["enabled"] else "no"),
            ("Created", group["created_at"]),
            ("Updated", group["updated_at"]),
        ]
    )


@rest_command(app, "members")
def list_members(
    client: RestClient,
    output: OutputFormat,
    group_id: Annotated[str, typer.Argument(help="ID")],
    membership: Annotated[
        str | None, typer.Option(help="dynamic or include; exclude lists the agents kept out by hand")
    ] = None,
    page: PageOpt = 1,
    per_page: PerPageOpt = 50,
) -> None:
    """List the agents that are members now (rules and manual rows evaluated)."""
    params: dict[str, Any] = {"page": page, "per_page": per_page}
    if membership:
        params["membership"] = membership
    body = client.json("GET", f"/api/v1/agent-groups/{group_id}/members", params=params)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_table(
        ["ID", "NAME", "OS", "ARCH", "IP", "VERSION", "STATUS", "MEMBERSHIP"],
        [
            (
                a["id"],
                a["name"],
                a["os"],
                a["architecture"],
                a["ip_address"],
                a["version"],
                a["status"],
                a["membership"],
            )
            for a in body["data"]
        ],
    )
    typer.echo(f"\nTotal: {body['total']}")
