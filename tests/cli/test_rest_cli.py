"""`certctl certs …` and `certctl jobs …` against a real HTTPS server (uvicorn in a thread, TLS pinned)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.cli.main import app as cli
from certctl.context import AppContext
from certctl.jobs.service import JobQueue

IDS = ["--owner-id", "o-alice", "--team-id", "t-web", "--issuer-id", "iss-local"]


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def test_certs_lifecycle_through_the_cli(served: tuple[AppContext, dict[str, str]], tmp_path: Path) -> None:
    context, env = served
    created = run(
        env,
        "certs",
        "create",
        "--name",
        "web",
        "--cn",
        "web.example.com",
        "--san",
        "web.example.com",
        *IDS,
        "--format",
        "json",
    )
    assert created.exit_code == 0, created.output
    cert_id = json.loads(created.stdout)["id"]

    queue = JobQueue(context.db, context.clock, on_terminal_failure=mark_certificate_failed)
    IssuanceProcessor(context.db, context.clock, context.cipher, context.connectors, queue).run(context.clock.now())

    table = run(env, "certs", "list")
    assert table.exit_code == 0, table.output
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["ID", "COMMON", "NAME", "STATUS", "EXPIRES", "ISSUER"]
    assert row.split()[:3] == [cert_id, "web.example.com", "Active"]
    assert "Total: 1" in table.stdout

    # global options are accepted before or after the command
    after = run(env, "certs", "get", cert_id, "--output", "json")
    before = run(env, "certs", "--json", "get", cert_id)
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert json.loads(after.stdout)["status"] == "Active"

    out = tmp_path / "web.pem"
    exported = run(env, "certs", "export", cert_id, "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert out.read_text().count("BEGIN CERTIFICATE") == 2

    renewed = run(env, "certs", "renew", cert_id)
    assert renewed.exit_code == 0
    job_id = renewed.stdout.split("Job ID: ")[1].strip()
    jobs = run(env, "jobs", "list", "--status", "Pending")
    assert job_id in jobs.stdout
    assert run(env, "jobs", "cancel", job_id).exit_code == 0
    got = json.loads(run(env, "jobs", "get", job_id, "--format", "json").stdout)
    assert got["status"] == "Cancelled"
    again = run(env, "jobs", "cancel", job_id)
    assert again.exit_code == 1
    assert "API error (HTTP 409)" in again.output


def test_cli_refuses_plain_http_and_reports_a_bad_key(served: tuple[AppContext, dict[str, str]]) -> None:
    _, env = served
    plain = run(env | {"CERTCTL_SERVER_URL": "http://localhost:1"}, "certs", "list")
    assert plain.exit_code == 1
    assert "https://" in plain.output
    denied = run(env, "certs", "list", "--api-key", "wrong")
    assert denied.exit_code == 1
    assert "HTTP 401" in denied.output
