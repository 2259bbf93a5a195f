"""`certctl certs revoke` and `certctl certs bulk-revoke` against a real HTTPS server."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.cli.main import app as cli
from certctl.context import AppContext
from certctl.jobs.service import JobQueue
from tests.conftest import API_KEYS

IDS = ["--owner-id", "o-alice", "--team-id", "t-web", "--issuer-id", "iss-local"]


def run(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, input=input)


def _issued(context: AppContext, env: dict[str, str], *names: str) -> list[str]:
    ids = []
    for name in names:
        created = run(env, "certs", "create", "--name", name, "--cn", f"{name}.example.com", *IDS, "--json")
        assert created.exit_code == 0, created.output
        ids.append(json.loads(created.stdout)["id"])
    queue = JobQueue(context.db, context.clock, on_terminal_failure=mark_certificate_failed)
    IssuanceProcessor(context.db, context.clock, context.cipher, context.connectors, queue).run(context.clock.now())
    return ids


def _status(env: dict[str, str], cert_id: str) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(run(env, "certs", "get", cert_id, "--json").stdout)
    return got


def test_certs_revoke(served: tuple[AppContext, dict[str, str]]) -> None:
    context, env = served
    first, second = _issued(context, env, "one", "two")

    table = run(env, "certs", "revoke", first, "--reason", "keyCompromise")
    assert table.exit_code == 0, table.output
    assert table.stdout.strip() == f"Certificate {first} revoked (keyCompromise)"
    assert (_status(env, first)["status"], _status(env, first)["revocation_reason"]) == ("Revoked", "keyCompromise")

    as_json = run(env, "certs", "revoke", second, "--json")
    assert json.loads(as_json.stdout) == {"status": "revoked"}
    assert _status(env, second)["revocation_reason"] == "unspecified"

    again = run(env, "certs", "revoke", first)
    assert again.exit_code == 1
    assert "already revoked" in again.output
    bad = run(env, "certs", "revoke", first, "--reason", "removeFromCRL")
    assert bad.exit_code == 1
    assert "invalid revocation reason" in bad.output


def test_certs_bulk_revoke(served: tuple[AppContext, dict[str, str]]) -> None:
    context, env = served
    ids = _issued(context, env, "a", "b", "c")

    declined = run(env, "certs", "bulk-revoke", "--reason", "superseded", "--id", ids[0], input="n\n")
    assert declined.exit_code == 1
    assert _status(env, ids[0])["status"] == "Active"
    assert run(env, "certs", "bulk-revoke", "--reason", "superseded").exit_code == 1  # no criterion

    operator = env | {"CERTCTL_API_KEY": API_KEYS["operator"][0]}
    refused = run(operator, "certs", "bulk-revoke", "--reason", "superseded", "--owner-id", "o-alice", "--yes")
    assert refused.exit_code == 1
    assert "HTTP 403" in refused.output

    first = run(env, "certs", "bulk-revoke", "--reason", "superseded", "--id", ids[0], input="y\n")
    assert first.exit_code == 0, first.output
    assert "Matched: 1\nRevoked: 1\nSkipped: 0\nFailed: 0" in first.stdout

    rest = run(env, "certs", "bulk-revoke", "--reason", "superseded", "--owner-id", "o-alice", "--yes", "--json")
    assert rest.exit_code == 0, rest.output
    assert json.loads(rest.stdout) == {
        "total_matched": 3,
        "total_revoked": 2,
        "total_skipped": 1,
        "total_failed": 0,
        "errors": [],
    }
    missing = run(env, "certs", "bulk-revoke", "--reason", "superseded", "--id", "mc-missing", "--yes")
    assert missing.exit_code == 1
    assert "mc-missing: certificate mc-missing not found" in missing.stdout
