"""`certctl certs …`: the certificate inventory over the REST API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from certctl.cli.client import CliError, RestClient
from certctl.cli.common import group_callback, rest_command
from certctl.cli.output import OutputFormat, date_only, print_fields, print_json, print_table

app = typer.Typer(help="Managed certificates.", no_args_is_help=True)
app.callback()(group_callback)

TERMINAL_JOB_STATES = frozenset({"Completed", "Failed", "Cancelled"})


@rest_command(app, "list")
def list_certs(
    client: RestClient,
    output: OutputFormat,
    status: Annotated[str | None, typer.Option(help="Pending, Active, Expiring, Expired, …")] = None,
    env: Annotated[str | None, typer.Option("--env", help="environment")] = None,
    sort: Annotated[str | None, typer.Option(help="name, commonName, notAfter, …; '-' prefix = descending")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option("--per-page", "--limit", min=1, max=500)] = 50,
    fields: Annotated[str | None, typer.Option(help="comma-separated fields (JSON output)")] = None,
    expires_before: Annotated[str | None, typer.Option("--expires-before", help="RFC 3339 or YYYY-MM-DD")] = None,
) -> None:
    """List certificates."""
    params = {
        k: v
        for k, v in {
            "status": status,
            "environment": env,
            "sort": sort,
            "page": page,
            "per_page": per_page,
            "fields": fields,
            "expires_before": expires_before,
        }.items()
        if v is not None
    }
    body = client.json("GET", "/api/v1/certificates", params=params)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    rows = [
        (c.get("id"), c.get("common_name"), c.get("status"), date_only(c.get("expires_at")), c.get("issuer_id"))
        for c in body["data"]
    ]
    print_table(["ID", "COMMON NAME", "STATUS", "EXPIRES", "ISSUER"], rows)
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(app, "get")
def get_cert(client: RestClient, output: OutputFormat, cert_id: Annotated[str, typer.Argument(help="ID")]) -> None:
    """Show one certificate."""
    cert = client.json("GET", f"/api/v1/certificates/{cert_id}")
    if output is OutputFormat.JSON:
        print_json(cert)
        return
    print_fields(
        [
            ("ID", cert["id"]),
            ("Name", cert["name"]),
            ("Common Name", cert["common_name"]),
            ("Status", cert["status"]),
            ("Issuer ID", cert["issuer_id"]),
            ("Owner ID", cert["owner_id"]),
            ("Expires At", cert["expires_at"]),
            ("SANs", cert["sans"]),
            ("Targets", cert["target_ids"]),
        ]
    )


@rest_command(app, "create")
def create_cert(
    client: RestClient,
    output: OutputFormat,
    name: Annotated[str, typer.Option(help="unique name")],
    common_name: Annotated[str, typer.Option("--cn", "--common-name", help="common name")],
    owner_id: Annotated[str, typer.Option("--owner-id")],
    team_id: Annotated[str, typer.Option("--team-id")],
    issuer_id: Annotated[str, typer.Option("--issuer-id")],
    renewal_policy_id: Annotated[str, typer.Option("--renewal-policy-id")] = "rp-default",
    san: Annotated[list[str] | None, typer.Option("--san", help="repeat for several")] = None,
    profile_id: Annotated[str | None, typer.Option("--profile-id")] = None,
    environment: Annotated[str, typer.Option("--environment")] = "",
    target_id: Annotated[list[str] | None, typer.Option("--target-id", help="repeat for several")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="key=value, repeat for several")] = None,
) -> None:
    """Create a certificate; issuance starts at once."""
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--tag {item!r} must be key=value")
        tags[key] = value
    body: dict[str, Any] = {
        "name": name,
        "common_name": common_name,
        "owner_id": owner_id,
        "team_id": team_id,
        "issuer_id": issuer_id,
        "renewal_policy_id": renewal_policy_id,
        "sans": san or [],
        "environment": environment,
        "target_ids": target_id or [],
        "tags": tags,
    }
    if profile_id:
        body["certificate_profile_id"] = profile_id
    cert = client.json("POST", "/api/v1/certificates", json=body)
    if output is OutputFormat.JSON:
        print_json(cert)
    else:
        typer.echo(f"Certificate {cert['id']} created ({cert['status']})")


@rest_command(app, "renew")
def renew_cert(
    client: RestClient,
    output: OutputFormat,
    cert_id: Annotated[str, typer.Argument(help="ID")],
    force: Annotated[bool, typer.Option(help="replace an open renewal job")] = False,
    wait: Annotated[bool, typer.Option(help="wait for the job to finish")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait with --wait")] = 600.0,
) -> None:
    """Trigger renewal (issuance if never issued)."""
    result = client.json("POST", f"/api/v1/certificates/{cert_id}/renew", params={"force": "true"} if force else {})
    if not wait:
        print_json(result) if output is OutputFormat.JSON else typer.echo(
            f"Renewal triggered for {cert_id}\nJob ID: {result['job_id']}"
        )
        return
    job = _wait_for_job(client, result["job_id"], timeout)
    if output is OutputFormat.JSON:
        print_json(job)
    else:
        typer.echo(f"Job {job['id']}: {job['status']} after {job['attempts']} attempt(s)")
        if job.get("last_error"):
            typer.echo(f"Last error: {job['last_error']}")
    if job["status"] != "Completed":
        raise typer.Exit(1)


def _wait_for_job(client: RestClient, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.json("GET", f"/api/v1/jobs/{job_id}")
        if job["status"] in TERMINAL_JOB_STATES and not job.get("next_retry_at"):
            return job
        if time.monotonic() > deadline:
            raise CliError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        time.sleep(1.0)


@rest_command(app, "export")
def export_cert(
    client: RestClient,
    output: OutputFormat,
    cert_id: Annotated[str, typer.Argument(help="ID")],
    kind: Annotated[str, typer.Option("--as", help="pem or pkcs12 (certificates only, never keys)")] = "pem",
    out: Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout for PEM)")] = None,
    password: Annotated[str, typer.Option(help="PKCS#12 password")] = "",
) -> None:
    """Export the current certificate and chain."""
    if kind == "pem":
        body = client.json("GET", f"/api/v1/certificates/{cert_id}/export/pem")
        if out is None:
            print_json(body) if output is OutputFormat.JSON else typer.echo(body["full_pem"], nl=False)
            return
        out.write_text(body["full_pem"])
    elif kind == "pkcs12":
        if out is None:
            raise CliError("--out is required for --as pkcs12")
        response = client.request("POST", f"/api/v1/certificates/{cert_id}/export/pkcs12", json={"password": password})
        out.write_bytes(response.content)
    else:
        raise CliError(f"--as {kind!r}: choose pem or pkcs12")
    typer.echo(f"wrote {out}", err=True)


@rest_command(app, "import")
def import_certs(
    client: RestClient,
    output: OutputFormat,
    files: Annotated[list[Path], typer.Argument(help="PEM files (leaf then chain)", exists=True, dir_okay=False)],
    owner_id: Annotated[str, typer.Option("--owner-id")],
    team_id: Annotated[str, typer.Option("--team-id")],
    issuer_id: Annotated[str, typer.Option("--issuer-id")],
    renewal_policy_id: Annotated[str, typer.Option("--renewal-policy-id")] = "rp-default",
    environment: Annotated[str, typer.Option("--environment")] = "imported",
) -> None:
    """Import existing certificates into the inventory (one per file), with a progress bar."""
    from cryptography import x509

    imported, failures = 0, []
    with Progress(transient=output is OutputFormat.JSON) as progress:
        task = progress.add_task("Importing", total=len(files))
        for path in files:
            pem = path.read_text()
            try:
                leaf = x509.load_pem_x509_certificates(pem.encode())[0]
                cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
                common_name = str(cn[0].value) if cn else path.stem
                client.json(
                    "POST",
                    "/api/v1/certificates",
                    json={
                        "name": path.stem,
                        "common_name": common_name,
                        "owner_id": owner_id,
                        "team_id": team_id,
                        "issuer_id": issuer_id,
                        "renewal_policy_id": renewal_policy_id,
                        "environment": environment,
                        "status": "Active",
                        "certificate_pem": pem,
                    },
                )
                imported += 1
            except (ValueError, CliError) as exc:
                failures.append({"file": str(path), "error": str(exc)})
            progress.advance(task)
    if output is OutputFormat.JSON:
        print_json({"imported": imported, "failed": failures})
    else:
        typer.echo(f"Successfully imported: {imported}\nFailed: {len(failures)}")
        for failure in failures:
            typer.echo(f"  {failure['file']}: {failure['error']}")
    if failures:
        raise typer.Exit(1)


REASON_HELP = (
    "unspecified, keyCompromise, caCompromise, affiliationChanged, superseded, cessationOfOperation, "
    "certificateHold or privilegeWithdrawn"
)


@rest_command(app, "revoke")
def revoke_cert(
    client: RestClient,
    output: OutputFormat,
    cert_id: Annotated[str, typer.Argument(help="ID")],
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "unspecified",
) -> None:
    """Revoke a certificate (final: it is never renewed or deployed again)."""
    result = client.json("POST", f"/api/v1/certificates/{cert_id}/revoke", json={"reason": reason})
    print_json(result) if output is OutputFormat.JSON else typer.echo(f"Certificate {cert_id} revoked ({reason})")


@rest_command(app, "bulk-revoke")
def bulk_revoke_certs(
    client: RestClient,
    output: OutputFormat,
    reason: Annotated[str, typer.Option(help=REASON_HELP)],
    profile_id: Annotated[str | None, typer.Option("--profile-id")] = None,
    owner_id: Annotated[str | None, typer.Option("--owner-id")] = None,
    team_id: Annotated[str | None, typer.Option("--team-id")] = None,
    issuer_id: Annotated[str | None, typer.Option("--issuer-id")] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="certificates on this agent's targets")] = None,
    cert_ids: Annotated[list[str] | None, typer.Option("--id", help="certificate ID, repeat for several")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Revoke every certificate matching the criteria (admin key; at least one criterion)."""
    criteria: dict[str, Any] = {
        k: v
        for k, v in {
            "profile_id": profile_id,
            "owner_id": owner_id,
            "team_id": team_id,
            "issuer_id": issuer_id,
            "agent_id": agent_id,
            "certificate_ids": cert_ids,
        }.items()
        if v
    }
    if not criteria:
        raise CliError("give at least one of --profile-id, --owner-id, --team-id, --issuer-id, --agent-id, --id")
    if not yes:
        described = ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in criteria.items())
        typer.confirm(f"Revoke every certificate matching {described} ({reason})? This cannot be undone", abort=True)
    result = client.json("POST", "/api/v1/certificates/bulk-revoke", json={"reason": reason, **criteria})
    if output is OutputFormat.JSON:
        print_json(result)
    else:
        typer.echo(
            f"Matched: {result['total_matched']}\nRevoked: {result['total_revoked']}\n"
            f"Skipped: {result['total_skipped']}\nFailed: {result['total_failed']}"
        )
        for error in result["errors"]:
            typer.echo(f"  {error['certificate_id']}: {error['error']}")
    if result["total_failed"]:
        raise typer.Exit(1)
