"""`certctl jobs …`: the job queue over the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from certctl.cli.client import RestClient
from certctl.cli.common import group_callback, rest_command
from certctl.cli.output import OutputFormat, print_fields, print_json, print_table

app = typer.Typer(help="Issuance, renewal and deployment jobs.", no_args_is_help=True)
app.callback()(group_callback)


@rest_command(app, "list")
def list_jobs(
    client: RestClient,
    output: OutputFormat,
    status: Annotated[str | None, typer.Option(help="Pending, Running, Failed, …")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Issuance, Renewal, Deployment, …")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=500)] = 50,
) -> None:
    """List jobs, newest first."""
    params = {
        k: v
        for k, v in {"status": status, "type": job_type, "page": page, "per_page": per_page}.items()
        if v is not None
    }
    body = client.json("GET", "/api/v1/jobs", params=params)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_table(
        ["ID", "TYPE", "CERTIFICATE", "STATUS", "ATTEMPTS"],
        [(j["id"], j["type"], j["certificate_id"], j["status"], j["attempts"]) for j in body["data"]],
    )
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(app, "get")
def get_job(client: RestClient, output: OutputFormat, job_id: Annotated[str, typer.Argument(help="ID")]) -> None:
    """Show one job."""
    job = client.json("GET", f"/api/v1/jobs/{job_id}")
    if output is OutputFormat.JSON:
        print_json(job)
        return
    print_fields(
        [
            ("ID", job["id"]),
            ("Type", job["type"]),
            ("Certificate ID", job["certificate_id"]),
            ("Status", job["status"]),
            ("Attempts", job["attempts"]),
            ("Max Attempts", job["max_attempts"]),
            ("Next Retry At", job.get("next_retry_at")),
            ("Last Error", job.get("last_error")),
        ]
    )


@rest_command(app, "cancel")
def cancel_job(client: RestClient, output: OutputFormat, job_id: Annotated[str, typer.Argument(help="ID")]) -> None:
    """Cancel a pending, waiting or running job."""
    body = client.json("POST", f"/api/v1/jobs/{job_id}/cancel")
    print_json(body) if output is OutputFormat.JSON else typer.echo(f"Job {job_id} cancelled")
