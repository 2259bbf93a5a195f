"""API keys, roles and the public routes (core.md §13.1, §5.1)."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from certctl.api.deps import AdminActor
from certctl.app import create_app
from certctl.clock import FrozenClock
from certctl.config import AuthType, Settings
from certctl.context import AppContext
from certctl.db.engine import Database
from certctl.errors import AlreadyExists, NotFound, ValidationFailed
from certctl.security.apikeys import (
    KEY_PREFIX,
    hash_key,
    legacy_keys,
    match_key,
    parse_named_keys,
)
from certctl.security.roles import Role
from tests.conftest import API_KEYS

ContextFactory = Callable[..., AppContext]
PUBLIC_ROUTES = ["/health", "/ready", "/api/v1/version", "/api/v1/auth/info", "/api/v1/openapi.json"]


def app_client(context: AppContext, headers: dict[str, str] | None = None) -> TestClient:
    return TestClient(create_app(context), headers=headers or {}, base_url="https://testserver")


def check(client: TestClient, **headers: str) -> tuple[int, dict[str, object]]:
    response = client.get("/api/v1/auth/check", headers=headers)
    return response.status_code, response.json()


# Presenting a key ---------------------------------------------------------------------------------------


def test_bearer_and_x_api_key_both_authenticate(make_client: Callable[..., TestClient]) -> None:
    anonymous = make_client(None)
    key = API_KEYS["operator"][0]
    for headers in ({"Authorization": f"Bearer {key}"}, {"Authorization": f"bearer {key}"}, {"X-API-Key": key}):
        response = anonymous.get("/api/v1/auth/check", headers=headers)
        assert response.status_code == 200, headers
        assert response.json() == {"status": "authenticated", "user": "operator", "admin": False, "role": "operator"}


def test_missing_key_is_401_with_a_challenge(make_client: Callable[..., TestClient]) -> None:
    response = make_client(None).get("/api/v1/teams")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="certctl"'
    body = response.json()
    assert body["error"] == "Authorization header required"
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWRtaW46YWRtaW4=", f"Token {API_KEYS['admin'][0]}", API_KEYS["admin"][0], "Bearer", "Bearer   "],
)
def test_a_header_that_is_not_bearer_is_401(make_client: Callable[..., TestClient], authorization: str) -> None:
    response = make_client(None).get("/api/v1/auth/check", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="certctl"'
    assert set(response.json()) == {"error", "message", "request_id"}


def test_a_malformed_authorization_header_is_not_rescued_by_x_api_key(
    make_client: Callable[..., TestClient],
) -> None:
    headers = {"Authorization": "Basic eDp5", "X-API-Key": API_KEYS["admin"][0]}
    assert make_client(None).get("/api/v1/auth/check", headers=headers).status_code == 401


def test_wrong_key_is_401_invalid_api_key(make_client: Callable[..., TestClient]) -> None:
    admin_key = API_KEYS["admin"][0]
    for key in ("wrong", admin_key + "x", admin_key[:-1], "admin", hash_key(admin_key)):
        response = make_client(None).get("/api/v1/auth/check", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401, key
        assert response.json()["error"] == "Invalid API key"
        assert response.headers["www-authenticate"] == 'Bearer realm="certctl"'


def test_public_routes_need_no_key(make_client: Callable[..., TestClient]) -> None:
    anonymous = make_client(None)
    for path in PUBLIC_ROUTES:
        response = anonymous.get(path)
        assert response.status_code == 200, (path, response.text)


def test_public_route_bodies(make_client: Callable[..., TestClient]) -> None:
    anonymous = make_client(None)
    assert anonymous.get("/health").json() == {"status": "healthy"}
    assert anonymous.get("/api/v1/auth/info").json() == {"auth_type": "api-key", "required": True}
    version = anonymous.get("/api/v1/version").json()
    assert set(version) == {"version", "commit", "modified", "build_time", "go_version"}
    assert version["go_version"].startswith("python3.")


def test_near_misses_of_public_paths_still_need_a_key(make_client: Callable[..., TestClient]) -> None:
    anonymous = make_client(None)
    for path in ("/health/", "/api/v1/version/", "/api/v1/auth/check", "/api/v1/teams", "/", "/healthz"):
        assert anonymous.get(path).status_code == 401, path


def test_auth_check_reports_each_role(make_client: Callable[..., TestClient]) -> None:
    for name, (_key, role) in API_KEYS.items():
        status, body = check(make_client(name))
        assert status == 200
        assert body == {"status": "authenticated", "user": name, "admin": role == "admin", "role": role}


# Roles ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_read_only_roles_can_read_but_not_write(make_client: Callable[..., TestClient], role: str) -> None:
    admin = make_client("admin")
    team = admin.post("/api/v1/teams", json={"name": "existing"}).json()
    reader = make_client(role)
    assert reader.get("/api/v1/teams").status_code == 200
    assert reader.get(f"/api/v1/teams/{team['id']}").status_code == 200
    assert reader.get("/api/v1/audit").status_code == 200
    refused = [
        reader.post("/api/v1/teams", json={"name": "nope"}),
        reader.put(f"/api/v1/teams/{team['id']}", json={"description": "nope"}),
        reader.patch(f"/api/v1/teams/{team['id']}", json={"description": "nope"}),
        reader.delete(f"/api/v1/teams/{team['id']}"),
    ]
    for response in refused:
        assert response.status_code == 403, response.request.method
        assert response.json()["error"] == "Forbidden"
        assert role in response.json()["message"]
    assert admin.get(f"/api/v1/teams/{team['id']}").json()["description"] == team["description"]
    assert admin.get("/api/v1/teams").json()["total"] == 1


def test_operator_and_admin_can_write(make_client: Callable[..., TestClient]) -> None:
    for role in ("operator", "admin"):
        writer = make_client(role)
        created = writer.post("/api/v1/teams", json={"name": f"by-{role}"})
        assert created.status_code == 201
        assert writer.delete(f"/api/v1/teams/{created.json()['id']}").status_code == 204


def _app_with_admin_route(context: AppContext) -> FastAPI:
    app = create_app(context)

    def admin_only(actor: AdminActor) -> dict[str, str]:
        return {"actor": actor.name}

    app.add_api_route("/api/v1/test/admin-only", admin_only, methods=["GET"])
    return app


def test_admin_gate_refuses_every_other_role(context: AppContext) -> None:
    app = _app_with_admin_route(context)
    for name, (key, role) in API_KEYS.items():
        response = TestClient(app, headers={"X-API-Key": key}).get("/api/v1/test/admin-only")
        if role == "admin":
            assert response.json() == {"actor": name}
        else:
            assert response.status_code == 403, name


# Keys stored in the database ---------------------------------------------------------------------------


def _every_stored_value(context: AppContext) -> list[str]:
    """Every value in every table, as text: the haystack a leaked key would be found in."""
    metadata = MetaData()
    metadata.reflect(context.db.engine)
    values: list[str] = []
    with context.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                values.extend(repr(value) for value in row)
    return values


def test_created_keys_authenticate_with_their_role(context: AppContext) -> None:
    client = app_client(context)
    for role in Role:
        created = context.api_keys.create(f"db-{role.value}", role)
        assert created.plaintext.startswith(KEY_PREFIX)
        status, body = check(client, Authorization=f"Bearer {created.plaintext}")
        assert status == 200
        assert body == {
            "status": "authenticated",
            "user": f"db-{role.value}",
            "admin": role is Role.ADMIN,
            "role": role.value,
        }
    viewer_key = context.api_keys.create("db-viewer-2", Role.VIEWER).plaintext
    refused = client.post("/api/v1/teams", json={"name": "x"}, headers={"X-API-Key": viewer_key})
    assert refused.status_code == 403


def test_created_keys_are_stored_only_as_sha256_hex(context: AppContext) -> None:
    created = context.api_keys.create("ci", Role.OPERATOR)
    assert created.key.key_hash == hashlib.sha256(created.plaintext.encode()).hexdigest()
    stored = _every_stored_value(context)
    assert any(created.key.key_hash in value for value in stored)
    leaks = [value for value in stored if created.plaintext in value]
    assert leaks == []
    # Not even a long fragment of it (a truncated or differently encoded copy).
    secret_part = created.plaintext.removeprefix(KEY_PREFIX)
    assert not [value for value in stored if secret_part[:16] in value]
    assert [row.name for row in context.api_keys.list()] == ["ci"]


def test_revoked_keys_stop_working_at_once(context_factory: ContextFactory, clock: FrozenClock) -> None:
    context = context_factory(clock=clock)
    client = app_client(context)
    created = context.api_keys.create("short-lived", Role.ADMIN)
    assert check(client, Authorization=f"Bearer {created.plaintext}")[0] == 200
    clock.advance(timedelta(minutes=5))
    revoked = context.api_keys.revoke("short-lived")
    assert revoked.revoked_at == clock.now()
    clock.advance(timedelta(minutes=5))
    status, body = check(client, Authorization=f"Bearer {created.plaintext}")
    assert status == 401
    assert body["error"] == "Invalid API key"
    assert context.api_keys.revoke("short-lived").revoked_at == revoked.revoked_at  # idempotent


def test_key_names_are_unique_and_validated(context: AppContext) -> None:
    context.api_keys.create("ci", Role.OPERATOR)
    with pytest.raises(AlreadyExists):
        context.api_keys.create("ci", Role.ADMIN)
    with pytest.raises(AlreadyExists):
        context.api_keys.create("admin", Role.ADMIN)  # the name of a CERTCTL_API_KEYS_NAMED key
    for bad in ("", "has space", "semi;colon", "ü", "x" * 129):
        with pytest.raises(ValidationFailed):
            context.api_keys.create(bad, Role.OPERATOR)
    with pytest.raises(NotFound):
        context.api_keys.revoke("never-created")


def test_key_creation_and_revocation_are_audited_without_the_key(context: AppContext) -> None:
    created = context.api_keys.create("audited", Role.VIEWER)
    context.api_keys.revoke("audited")
    client = app_client(context, {"Authorization": f"Bearer {API_KEYS['auditor'][0]}"})
    rows = client.get("/api/v1/audit", params={"resource_type": "api_key"}).json()["data"]
    assert sorted(row["action"] for row in rows) == ["api_key_created", "api_key_revoked"]
    assert created.plaintext not in str(rows)


# Auth disabled, legacy keys ----------------------------------------------------------------------------


def test_auth_type_none_lets_requests_through_as_anonymous_never_admin(context_factory: ContextFactory) -> None:
    context = context_factory(auth_type="none")
    assert context.settings.auth_type is AuthType.NONE
    warning = context.settings.auth_disabled_warning
    assert warning is not None
    assert "CERTCTL_AUTH_TYPE=none" in warning
    app = _app_with_admin_route(context)
    client = TestClient(app, base_url="https://testserver")
    assert client.get("/api/v1/auth/check").json() == {
        "status": "authenticated",
        "user": "anonymous",
        "admin": False,
        "role": "operator",
    }
    # Even an admin key does not make an anonymous request an admin one.
    admin_key = {"Authorization": f"Bearer {API_KEYS['admin'][0]}"}
    assert client.get("/api/v1/auth/check", headers=admin_key).json()["user"] == "anonymous"
    assert client.get("/api/v1/test/admin-only", headers=admin_key).status_code == 403
    assert client.post("/api/v1/teams", json={"name": "open"}).status_code == 201
    assert client.get("/api/v1/auth/info").json() == {"auth_type": "none", "required": False}


def test_api_key_mode_has_no_warning() -> None:
    assert Settings(api_keys_named="a:b").auth_disabled_warning is None


def test_legacy_auth_secret_keys_map_to_legacy_key_n(context_factory: ContextFactory) -> None:
    context = context_factory(api_keys_named="", auth_secret="first-secret, second-secret")
    client = app_client(context)
    for index, secret in enumerate(("first-secret", "second-secret")):
        status, body = check(client, Authorization=f"Bearer {secret}")
        assert status == 200
        assert body == {"status": "authenticated", "user": f"legacy-key-{index}", "admin": False, "role": "operator"}
    assert check(client, Authorization=f"Bearer {API_KEYS['admin'][0]}")[0] == 401


def test_named_keys_win_over_the_legacy_secret(context_factory: ContextFactory) -> None:
    context = context_factory(auth_secret="legacy-secret")
    client = app_client(context)
    assert check(client, Authorization="Bearer legacy-secret")[0] == 401
    assert check(client, Authorization=f"Bearer {API_KEYS['viewer'][0]}")[1]["user"] == "viewer"


# parse_named_keys ------------------------------------------------------------------------------------


def test_parse_named_keys_roles_and_defaults() -> None:
    entries = parse_named_keys(" ops:k1 , boss:k2:admin,,look:k3:VIEWER, audit:k4:auditor,op2:k5:operator ")
    assert [(e.name, e.role) for e in entries] == [
        ("ops", Role.OPERATOR),
        ("boss", Role.ADMIN),
        ("look", Role.VIEWER),
        ("audit", Role.AUDITOR),
        ("op2", Role.OPERATOR),
    ]
    assert entries[0].key_hash == hashlib.sha256(b"k1").hexdigest()
    assert "k1" not in repr(entries)
    assert parse_named_keys("") == []
    assert parse_named_keys(" , ") == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bad name:k", "must match"),
        ("bad.name:k", "must match"),
        (":k", "must match"),
        ("name:", "empty"),
        ("name: ", "empty"),
        ("justaname", "name:key"),
        ("a:b:admin:extra", "name:key"),
        ("a:k:root", "role 'root'"),
        ("a:k:admin,a:k:admin", "duplicate"),
        ("a:k1:admin,a:k2", "different roles"),
        ("a:k1:viewer,a:k2:auditor", "different roles"),
    ],
)
def test_parse_named_keys_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_named_keys(text)


def test_rotation_overlap_keeps_one_identity_for_both_keys() -> None:
    entries = parse_named_keys("deploy:old-key:admin,deploy:new-key:admin,other:x")
    assert [e.name for e in entries] == ["deploy", "deploy", "other"]
    old, new = match_key("old-key", entries), match_key("new-key", entries)
    assert old is not None
    assert new is not None
    assert (old.name, old.role) == (new.name, new.role) == ("deploy", Role.ADMIN)
    assert match_key("unknown", entries) is None
    # No suffix and an explicit operator suffix are the same role, so they may overlap too.
    assert len(parse_named_keys("ci:one,ci:two:operator")) == 2


def test_rotation_overlap_works_over_http(context_factory: ContextFactory) -> None:
    context = context_factory(api_keys_named="deploy:old-key-123:admin,deploy:new-key-456:admin")
    client = app_client(context)
    for key in ("old-key-123", "new-key-456"):
        assert check(client, Authorization=f"Bearer {key}")[1]["user"] == "deploy"


def test_bad_named_keys_stop_the_settings_naming_the_entry() -> None:
    with pytest.raises(ValueError, match="entry 2"):
        Settings(api_keys_named="good:k,bad name:k")


def test_legacy_keys_skip_blanks() -> None:
    assert [(e.name, e.role) for e in legacy_keys(" a, ,b ")] == [
        ("legacy-key-0", Role.OPERATOR),
        ("legacy-key-1", Role.OPERATOR),
    ]
    assert legacy_keys("") == []


_names = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
_keys = st.text(st.characters(codec="ascii", exclude_characters=",: \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f"), min_size=1)


@given(
    st.lists(st.tuples(_names, _keys, st.sampled_from(list(Role))), min_size=1, max_size=6, unique_by=lambda e: e[0])
)
def test_every_parsed_key_matches_its_own_name_and_role(entries: list[tuple[str, str, Role]]) -> None:
    text = ",".join(f"{name}:{key}:{role.value}" for name, key, role in entries)
    parsed = parse_named_keys(text)
    assert [(e.name, e.role, e.key_hash) for e in parsed] == [(n, r, hash_key(k)) for n, k, r in entries]
    for name, key, role in entries:
        found = match_key(key, parsed)
        assert found is not None
        # Two names may share a key; the first configured one wins, consistently.
        first = next(e for e in parsed if e.key_hash == hash_key(key))
        assert (found.name, found.role) == (first.name, first.role)
        if first.name == name:
            assert found.role is role


# /ready --------------------------------------------------------------------------------------------------


def test_ready_when_the_database_answers(make_client: Callable[..., TestClient]) -> None:
    response = make_client(None).get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "db": "reachable"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_ready_is_503_when_the_database_is_unreachable(context: AppContext) -> None:
    client = app_client(context)
    original = context.db
    context.db = Database.from_url(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/certctl")
    try:
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "db_unavailable"
        assert body["error"]
        assert client.get("/health").status_code == 200  # liveness does not depend on the database
    finally:
        context.db.dispose()
        context.db = original
    assert client.get("/ready").status_code == 200


def test_ready_is_503_when_the_sqlite_file_cannot_be_opened(context: AppContext, tmp_path: Path) -> None:
    client = app_client(context)
    original = context.db
    directory = tmp_path / "a-directory-not-a-database"
    directory.mkdir()
    context.db = Database.from_url(f"sqlite:///{directory}")
    try:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "db_unavailable"
    finally:
        context.db.dispose()
        context.db = original


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_ready_gives_up_after_its_timeout(context_factory: ContextFactory, silent_server: int) -> None:
    context = context_factory(ready_timeout="200ms")
    assert context.settings.ready_timeout == timedelta(milliseconds=200)
    client = app_client(context)
    original = context.db
    context.db = Database.from_url(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/certctl")
    try:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json() == {"status": "db_unavailable", "error": "database ping timed out"}
    finally:
        context.db.dispose()
        context.db = original
