"""`certctl issuers …`: issuers and their intermediate CA hierarchy over the REST API (pki.md §A1.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from certctl.cli.client import CliError, RestClient
from certctl.cli.common import group_callback, rest_command
from certctl.cli.output import OutputFormat, date_only, print_fields, print_json, print_table

app = typer.Typer(help="Issuers (CA connectors) and their intermediate CAs.", no_args_is_help=True)
app.callback()(group_callback)
intermediates_app = typer.Typer(
    help="An issuer's intermediate CA hierarchy (admin): list, get, create a root or child, retire.",
    no_args_is_help=True,
)
intermediates_app.callback()(group_callback)
app.add_typer(intermediates_app, name="intermediates")

IdArg = Annotated[str, typer.Argument(help="ID")]


# -- issuers ------------------------------------------------------------------------------------------------


@rest_command(app, "list")
def list_issuers(
    client: RestClient,
    output: OutputFormat,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=500)] = 50,
) -> None:
    """List issuers."""
    body = client.json("GET", "/api/v1/issuers", params={"page": page, "per_page": per_page})
    if output is OutputFormat.JSON:
        print_json(body)
        return
    rows = [
        (i["id"], i["name"], i["type"], "yes" if i["enabled"] else "no", i.get("hierarchy_mode"), i["test_status"])
        for i in body["data"]
    ]
    print_table(["ID", "NAME", "TYPE", "ENABLED", "HIERARCHY", "TEST"], rows)
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(app, "get")
def get_issuer(client: RestClient, output: OutputFormat, issuer_id: IdArg) -> None:
    """Show one issuer (secrets in its config are masked by the server)."""
    issuer = client.json("GET", f"/api/v1/issuers/{issuer_id}")
    if output is OutputFormat.JSON:
        print_json(issuer)
        return
    config = issuer.get("config") or {}
    print_fields(
        [
            ("ID", issuer["id"]),
            ("Name", issuer["name"]),
            ("Type", issuer["type"]),
            ("Enabled", "yes" if issuer["enabled"] else "no"),
            ("Hierarchy", issuer.get("hierarchy_mode")),
            ("Issuing CA", config.get("issuing_ca_id")),
            ("Source", issuer.get("source")),
            ("Last Test", f"{issuer['test_status']} {issuer.get('last_tested_at') or ''}".strip()),
            ("Config", ", ".join(f"{key}={value}" for key, value in sorted(config.items()))),
        ]
    )


# -- intermediates ------------------------------------------------------------------------------------------


def _constraints(ca: dict[str, Any], kind: str) -> list[str]:
    return [name for entry in ca.get("name_constraints") or [] for name in entry.get(kind, [])]


def _path_len(ca: dict[str, Any]) -> str:
    value = ca.get("path_len_constraint")
    return "-" if value is None else str(value)


def _show_ca(ca: dict[str, Any]) -> None:
    print_fields(
        [
            ("ID", ca["id"]),
            ("Name", ca["name"]),
            ("Issuer", ca["owning_issuer_id"]),
            ("Parent", ca.get("parent_ca_id") or "(root)"),
            ("Subject", ca["subject"]),
            ("State", ca["state"]),
            ("Key Driver", ca["key_driver_id"]),
            ("Not Before", ca["not_before"]),
            ("Not After", ca["not_after"]),
            ("Path Length", _path_len(ca)),
            ("Permitted", _constraints(ca, "permitted") or "-"),
            ("Excluded", _constraints(ca, "excluded") or "-"),
            ("OCSP URL", ca.get("ocsp_responder_url")),
        ]
    )


@rest_command(intermediates_app, "list")
def list_intermediates(client: RestClient, output: OutputFormat, issuer_id: IdArg) -> None:
    """List an issuer's CAs, roots first."""
    body = client.json("GET", f"/api/v1/issuers/{issuer_id}/intermediates")
    if output is OutputFormat.JSON:
        print_json(body)
        return
    rows = [
        (
            ca["id"],
            ca["name"],
            ca.get("parent_ca_id") or "(root)",
            ca["state"],
            _path_len(ca),
            ", ".join(_constraints(ca, "permitted")) or "-",
            date_only(ca["not_after"]),
            ca["key_driver_id"],
        )
        for ca in body["data"]
    ]
    print_table(["ID", "NAME", "PARENT", "STATE", "PATH LEN", "PERMITTED", "NOT AFTER", "KEY"], rows)
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(intermediates_app, "get")
def get_intermediate(client: RestClient, output: OutputFormat, ca_id: IdArg) -> None:
    """Show one CA (its certificate with --output json)."""
    ca = client.json("GET", f"/api/v1/intermediates/{ca_id}")
    print_json(ca) if output is OutputFormat.JSON else _show_ca(ca)


@rest_command(intermediates_app, "create")
def create_intermediate(
    client: RestClient,
    output: OutputFormat,
    issuer_id: Annotated[str, typer.Argument(help="the issuer that owns the hierarchy")],
    name: Annotated[str, typer.Option("--name", help="unique per issuer")],
    parent: Annotated[str | None, typer.Option("--parent", help="parent CA ID; omitted: register the root")] = None,
    common_name: Annotated[str | None, typer.Option("--common-name", help="child subject CN (default: --name)")] = None,
    organization: Annotated[list[str] | None, typer.Option("--organization", help="child subject O (repeat)")] = None,
    algorithm: Annotated[str | None, typer.Option("--algorithm", help="ECDSA-P256 (default), RSA-3072, …")] = None,
    ttl_days: Annotated[int | None, typer.Option("--ttl-days", min=1, help="default 5 years")] = None,
    path_len: Annotated[int | None, typer.Option("--path-len", min=0, help="default: the parent's minus 1")] = None,
    permit: Annotated[list[str] | None, typer.Option("--permit", help="permitted DNS subtree or IP range")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="excluded DNS subtree or IP range")] = None,
    ocsp_url: Annotated[str | None, typer.Option("--ocsp-url", help="AIA OCSP URL of the child")] = None,
    root_cert: Annotated[Path | None, typer.Option("--root-cert", help="root only: its PEM certificate")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="root only: its PEM private key")] = None,
    key_driver: Annotated[str | None, typer.Option("--key-driver", help="db (default), issuer or pkcs11:<uri>")] = None,
) -> None:
    """Register the issuer's root (no --parent: --root-cert with --key or --key-driver, or nothing for the
    issuer's own CA) or sign a child CA under --parent."""
    body: dict[str, Any] = {"name": name}
    if parent:
        body["parent_ca_id"] = parent
    if root_cert is not None:
        body["root_cert_pem"] = _read(root_cert, "--root-cert")
    if key is not None:
        body["key_pem"] = _read(key, "--key")
    if common_name or organization:
        body["subject"] = {"common_name": common_name or name, "organization": organization or []}
    if permit or exclude:
        body["name_constraints"] = [{"permitted": permit or [], "excluded": exclude or []}]
    optional = {
        "key_driver_id": key_driver,
        "algorithm": algorithm,
        "ttl_days": ttl_days,
        "path_len_constraint": path_len,
        "ocsp_responder_url": ocsp_url,
    }
    body |= {field: value for field, value in optional.items() if value is not None}
    ca = client.json("POST", f"/api/v1/issuers/{issuer_id}/intermediates", json=body)
    if output is OutputFormat.JSON:
        print_json(ca)
        return
    typer.echo(f"Created {'child' if ca.get('parent_ca_id') else 'root'} CA {ca['id']}\n")
    _show_ca(ca)


@rest_command(intermediates_app, "retire")
def retire_intermediate(
    client: RestClient,
    output: OutputFormat,
    ca_id: IdArg,
    note: Annotated[str, typer.Option("--note", help="why, for the audit trail")] = "",
    confirm: Annotated[bool, typer.Option("--confirm", help="retiring → retired, once nothing depends on it")] = False,
) -> None:
    """Retire a CA, drain first: the first call makes it retiring, a second with --confirm retired."""
    ca = client.json("POST", f"/api/v1/intermediates/{ca_id}/retire", json={"note": note, "confirm": confirm})
    if output is OutputFormat.JSON:
        print_json(ca)
    elif ca["state"] == "retiring":
        typer.echo(f"CA {ca_id} is retiring; once drained, run again with --confirm to retire it for good")
    else:
        typer.echo(f"CA {ca_id} is {ca['state']}")


def _read(path: Path, option: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{option} {path}: cannot read it: {exc}") from exc
