"""`certctl notifications …`: the notification queue and its dead-letter queue over the REST API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from certctl.cli.client import RestClient
from certctl.cli.common import group_callback, rest_command
from certctl.cli.output import OutputFormat, print_fields, print_json, print_table

app = typer.Typer(help="Notifications, their delivery attempts and the dead-letter queue.", no_args_is_help=True)
app.callback()(group_callback)

MAX_ATTEMPTS = 5
ERROR_WIDTH = 60


def _short(text: str | None, width: int = ERROR_WIDTH) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@rest_command(app, "list")
def list_notifications(
    client: RestClient,
    output: OutputFormat,
    status: Annotated[str | None, typer.Option(help="pending, sent, failed, dead or read")] = None,
    channel: Annotated[str | None, typer.Option(help="Email, Webhook, Slack, Teams, PagerDuty, OpsGenie")] = None,
    notification_type: Annotated[
        str | None, typer.Option("--type", help="ExpirationWarning, RenewalFailure, …")
    ] = None,
    certificate_id: Annotated[str | None, typer.Option("--certificate-id")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=500)] = 50,
) -> None:
    """List notifications, newest first (`--status dead` shows the dead-letter queue)."""
    params: dict[str, Any] = {
        k: v
        for k, v in {
            "status": status,
            "channel": channel,
            "type": notification_type,
            "certificate_id": certificate_id,
            "page": page,
            "per_page": per_page,
        }.items()
        if v is not None
    }
    body = client.json("GET", "/api/v1/notifications", params=params)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    print_table(
        ["ID", "TYPE", "CHANNEL", "STATUS", "RETRY", "ATTEMPTS", "RECIPIENT", "CREATED", "LAST ERROR"],
        [
            (
                n["id"],
                n["type"],
                n["channel"],
                n["status"],
                f"{n['retry_count']}/{MAX_ATTEMPTS}",
                n["attempt_count"],
                n["recipient"],
                n["created_at"],
                _short(n.get("last_error")),
            )
            for n in body["data"]
        ],
    )
    typer.echo(f"\nTotal: {body['total']}")


@rest_command(app, "get")
def get_notification(
    client: RestClient, output: OutputFormat, notification_id: Annotated[str, typer.Argument(help="ID")]
) -> None:
    """Show one notification and its delivery attempts."""
    row = client.json("GET", f"/api/v1/notifications/{notification_id}")
    history = client.json("GET", f"/api/v1/notifications/{notification_id}/attempts")
    if output is OutputFormat.JSON:
        print_json({**row, "attempts": history["data"]})
        return
    delivered = f"delivered on attempt {row['attempt_count']}" if row["status"] in ("sent", "read") else None
    print_fields(
        [
            ("ID", row["id"]),
            ("Type", row["type"]),
            ("Channel", row["channel"]),
            ("Recipient", row["recipient"]),
            ("Status", row["status"] if delivered is None else f"{row['status']} ({delivered})"),
            ("Retry", f"{row['retry_count']}/{MAX_ATTEMPTS}"),
            ("Next Retry At", row.get("next_retry_at")),
            ("Certificate ID", row.get("certificate_id")),
            ("Created At", row["created_at"]),
            ("Sent At", row.get("sent_at")),
            ("Last Error", row.get("last_error")),
            ("Message", row["message"]),
        ]
    )
    _print_attempts(history["data"])


@rest_command(app, "attempts")
def list_attempts(
    client: RestClient, output: OutputFormat, notification_id: Annotated[str, typer.Argument(help="ID")]
) -> None:
    """Every delivery attempt of one notification."""
    history = client.json("GET", f"/api/v1/notifications/{notification_id}/attempts")
    if output is OutputFormat.JSON:
        print_json(history)
        return
    _print_attempts(history["data"])


def _print_attempts(attempts: list[dict[str, Any]]) -> None:
    typer.echo("")
    print_table(
        ["#", "TIME", "DURATION", "CHANNEL", "OUTCOME", "REPLY", "ERROR"],
        [
            (
                a["attempt_number"],
                a["attempted_at"],
                f"{a['duration_ms']} ms",
                a["channel"],
                a["outcome"],
                a.get("http_status") or a.get("smtp_reply") or "",
                _short(a.get("error")),
            )
            for a in attempts
        ],
    )


@rest_command(app, "requeue")
def requeue(
    client: RestClient, output: OutputFormat, notification_id: Annotated[str, typer.Argument(help="ID")]
) -> None:
    """Put a failed or dead notification back in the queue with a fresh 5-attempt budget."""
    body = client.json("POST", f"/api/v1/notifications/{notification_id}/requeue")
    print_json(body) if output is OutputFormat.JSON else typer.echo(f"Notification {notification_id} requeued")


@rest_command(app, "read")
def mark_read(
    client: RestClient, output: OutputFormat, notification_id: Annotated[str, typer.Argument(help="ID")]
) -> None:
    """Mark a notification as read."""
    body = client.json("POST", f"/api/v1/notifications/{notification_id}/read")
    print_json(body) if output is OutputFormat.JSON else typer.echo(f"Notification {notification_id} marked as read")


@rest_command(app, "test")
def send_test(
    client: RestClient,
    output: OutputFormat,
    channel: Annotated[str, typer.Option(help="Email, Webhook, Slack, Teams, PagerDuty or OpsGenie")],
    certificate_id: Annotated[str | None, typer.Option("--certificate-id")] = None,
    threshold_days: Annotated[int | None, typer.Option("--threshold-days", min=0, max=365)] = None,
    recipient: Annotated[str | None, typer.Option(help="override the recipient (e-mail address or URL)")] = None,
) -> None:
    """Send a [TEST] message through a channel now (admin); nothing is stored as a notification."""
    payload = {
        k: v
        for k, v in {
            "channel": channel,
            "certificate_id": certificate_id,
            "threshold_days": threshold_days,
            "recipient": recipient,
        }.items()
        if v is not None
    }
    body = client.json("POST", "/api/v1/admin/notifications/test", json=payload)
    if output is OutputFormat.JSON:
        print_json(body)
        return
    line = f"{body['channel']}: {body['status']} in {body['duration_ms']} ms"
    typer.echo(line + (f" — {body['error']}" if body.get("error") else ""))
    if body["status"] != "sent":
        raise typer.Exit(1)
