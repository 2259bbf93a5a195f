"""`certctl apikey create|list|revoke` against a real database, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from certctl.app import create_app
from certctl.cli.main import app
from certctl.context import AppContext
from certctl.security.apikeys import KEY_PREFIX

Run = Callable[..., Result]


@pytest.fixture
def certctl(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the CLI in-process with the test database, and nothing else from the environment."""
    for name in list(os.environ):
        if name.startswith("CERTCTL_"):
            monkeypatch.delenv(name)
    runner = CliRunner()
    env = {"CERTCTL_DATA_DIR": str(tmp_path / "data"), "CERTCTL_DATABASE_URL": database_url}

    def run(*args: str, **settings: str) -> Result:
        extra = {f"CERTCTL_{name.upper()}": value for name, value in settings.items()}
        return runner.invoke(app, list(args), env=env | extra, catch_exceptions=False)

    return run


@pytest.fixture
def server_context(context_factory: Callable[..., AppContext]) -> AppContext:
    """What the server would build from the same database, with no keys from the environment."""
    return context_factory(api_keys_named="")


def auth_check(context: AppContext, key: str) -> tuple[int, dict[str, object]]:
    client = TestClient(create_app(context), base_url="https://testserver")
    response = client.get("/api/v1/auth/check", headers={"Authorization": f"Bearer {key}"})
    return response.status_code, response.json()


def created_key(result: Result) -> str:
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # the key alone, so `KEY=$(certctl apikey create …)` works
    return lines[0]


def test_create_prints_the_key_once_and_it_authenticates_as_admin(certctl: Run, server_context: AppContext) -> None:
    result = certctl("apikey", "create", "--name", "ci", "--admin")
    key = created_key(result)
    assert key.startswith(KEY_PREFIX)
    assert len(key) > 40
    assert "role admin" in result.stderr
    assert "only this once" in result.stderr
    assert key not in result.stderr
    assert auth_check(server_context, key) == (
        200,
        {"status": "authenticated", "user": "ci", "admin": True, "role": "admin"},
    )
    # Only the SHA-256 is kept.
    (row,) = server_context.api_keys.list()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()


def test_each_create_makes_a_different_key(certctl: Run) -> None:
    first = created_key(certctl("apikey", "create", "--name", "one"))
    second = created_key(certctl("apikey", "create", "--name", "two"))
    assert first != second


@pytest.mark.parametrize("role", ["operator", "viewer", "auditor"])
def test_create_with_a_role(certctl: Run, server_context: AppContext, role: str) -> None:
    key = created_key(certctl("apikey", "create", "--name", f"k-{role}", "--role", role))
    status, body = auth_check(server_context, key)
    assert status == 200
    assert (body["role"], body["admin"]) == (role, False)


def test_default_role_is_operator(certctl: Run, server_context: AppContext) -> None:
    key = created_key(certctl("apikey", "create", "--name", "plain"))
    assert auth_check(server_context, key)[1]["role"] == "operator"


def test_list_shows_names_and_roles_never_key_material(certctl: Run, server_context: AppContext) -> None:
    admin_key = created_key(certctl("apikey", "create", "--name", "ci", "--admin"))
    viewer_key = created_key(certctl("apikey", "create", "--name", "dash", "--role", "viewer"))
    listed = certctl("apikey", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()}
    assert rows == {"ci": ["admin", "database", "active"], "dash": ["viewer", "database", "active"]}
    as_json = certctl("apikey", "list", "--json")
    assert as_json.exit_code == 0, as_json.output
    parsed = json.loads(as_json.stdout)
    assert [(r["name"], r["role"], r["revoked_at"]) for r in parsed] == [
        ("ci", "admin", None),
        ("dash", "viewer", None),
    ]
    hashes = [hashlib.sha256(k.encode()).hexdigest() for k in (admin_key, viewer_key)]
    for output in (listed.output, as_json.output):
        for secret in (admin_key, viewer_key, *hashes):
            assert secret not in output
        assert KEY_PREFIX not in output


def test_list_includes_environment_keys_without_their_values(certctl: Run) -> None:
    created_key(certctl("apikey", "create", "--name", "ci"))
    secret = "s3cret-value-123"
    result = certctl("apikey", "list", api_keys_named=f"deploy:{secret}:admin,deploy:other-value-456:admin")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [
        ["ci", "operator", "database", "active"],
        ["deploy", "admin", "environment", "active"],
        ["deploy", "admin", "environment", "active"],
    ]
    assert secret not in result.output
    assert hashlib.sha256(secret.encode()).hexdigest() not in result.output
    # An environment key's name is taken for database keys too.
    clash = certctl("apikey", "create", "--name", "deploy", api_keys_named=f"deploy:{secret}:admin")
    assert clash.exit_code != 0
    assert "already exists" in clash.stderr


def test_revoke_stops_the_key_at_once(certctl: Run, server_context: AppContext) -> None:
    key = created_key(certctl("apikey", "create", "--name", "ci", "--admin"))
    assert auth_check(server_context, key)[0] == 200
    revoked = certctl("apikey", "revoke", "ci")
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.stdout
    status, body = auth_check(server_context, key)
    assert status == 401
    assert body["error"] == "Invalid API key"
    listed = certctl("apikey", "list")
    assert listed.stdout.split() == ["ci", "admin", "database", "revoked"]
    # The name stays taken, so a revoked identity cannot be quietly recreated.
    again = certctl("apikey", "create", "--name", "ci")
    assert again.exit_code != 0


def test_revoking_an_unknown_key_fails(certctl: Run) -> None:
    result = certctl("apikey", "revoke", "nobody")
    assert result.exit_code != 0
    assert "nobody" in result.stderr
    assert "not found" in result.stderr


def test_duplicate_name_fails_with_a_message_and_keeps_the_first_key(certctl: Run, server_context: AppContext) -> None:
    key = created_key(certctl("apikey", "create", "--name", "ci"))
    duplicate = certctl("apikey", "create", "--name", "ci", "--admin")
    assert duplicate.exit_code != 0
    assert duplicate.stdout == ""
    assert "already exists" in duplicate.stderr
    assert "'ci'" in duplicate.stderr
    assert auth_check(server_context, key)[1]["role"] == "operator"
    assert len(server_context.api_keys.list()) == 1


@pytest.mark.parametrize("name", ["has space", "semi;colon", "dots.not.allowed", "x" * 129, ""])
def test_invalid_name_fails(certctl: Run, server_context: AppContext, name: str) -> None:
    result = certctl("apikey", "create", "--name", name)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert "[A-Za-z0-9_-]" in result.stderr
    assert server_context.api_keys.list() == []


def test_unknown_role_fails(certctl: Run) -> None:
    result = certctl("apikey", "create", "--name", "x", "--role", "root")
    assert result.exit_code != 0
    assert result.stdout == ""
