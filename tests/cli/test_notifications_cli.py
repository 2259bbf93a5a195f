"""`certctl notifications …` against a real HTTPS server: the dead-letter queue seen, shown and requeued."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from certctl.cli.main import app as cli
from certctl.context import AppContext
from tests.notifications.rows import enqueue, row


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_dead_letter_queue_through_the_cli(served: tuple[AppContext, dict[str, str]]) -> None:
    context, env = served
    dead, delivered_later = enqueue(context, 2, channel="Slack")  # Slack is not configured here
    context.notifications.dispatcher.deliver([dead])

    listed = run(env, "notifications", "list", "--status", "dead")
    assert listed.exit_code == 0, listed.output
    assert dead in listed.output
    assert "0/5" in listed.output
    assert delivered_later not in listed.output
    assert "Total: 1" in listed.output

    shown = run(env, "notifications", "get", dead)
    assert shown.exit_code == 0, shown.output
    assert "CERTCTL_SLACK_WEBHOOK_URL" in shown.output
    assert "not_configured" in shown.output

    as_json = json.loads(run(env, "notifications", "get", dead, "--output", "json").output)
    assert (as_json["status"], as_json["attempts"][0]["outcome"]) == ("dead", "not_configured")

    requeued = run(env, "notifications", "requeue", dead)
    assert f"Notification {dead} requeued" in requeued.output
    context.notifications.dispatcher.wait_idle(30)
    assert row(context, dead).attempt_count == 2  # sent again at once (and dead again: Slack is still unset)

    again = run(env, "notifications", "requeue", delivered_later)  # pending: nothing to requeue
    assert again.exit_code != 0
    assert "already pending" in again.output

    missing = run(env, "notifications", "get", "notif-nope")
    assert missing.exit_code != 0
    assert "not found" in missing.output.lower()

    test = run(env, "notifications", "test", "--channel", "Slack")
    assert test.exit_code == 1
    assert "not_configured" in test.output
    assert "CERTCTL_SLACK_WEBHOOK_URL" in test.output
