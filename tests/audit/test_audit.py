"""The audit trail: one row per mutating API call, append-only storage, filtered and paged reads, redaction."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from certctl.audit.models import AuditEvent
from certctl.audit.redaction import CREDENTIAL, PII, redact
from certctl.audit.service import AuditRecorder
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.security.roles import SYSTEM_ACTOR, Actor, ActorType, Role
from tests.conftest import API_KEYS, client_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = Actor(name="alice", role=Role.OPERATOR)
AGENT = Actor(name="agent-web-01", role=Role.OPERATOR, actor_type=ActorType.AGENT)


@pytest.fixture
def ctx(context_factory: Callable[..., AppContext], clock: FrozenClock) -> AppContext:
    return context_factory(clock=clock)


@pytest.fixture
def api(ctx: AppContext) -> Iterator[TestClient]:
    with client_for(ctx) as test_client:
        yield test_client


def all_events(ctx: AppContext) -> list[AuditEvent]:
    with ctx.db.begin() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.timestamp, AuditEvent.id)))


def api_events(ctx: AppContext) -> list[AuditEvent]:
    return [e for e in all_events(ctx) if e.resource_type == "api"]


def record(
    ctx: AppContext,
    actor: Actor,
    action: str,
    resource_type: str = "certificate",
    resource_id: str = "mc-1",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    with ctx.db.begin() as session:
        return AuditRecorder(session, ctx.clock).record(actor, action, resource_type, resource_id, details)


JSON = {"content-type": "application/json"}


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# --- the middleware's row per mutating call ---------------------------------------------------------


def test_each_mutating_call_records_one_row_with_actor_path_body_hash_and_status(
    ctx: AppContext, api: TestClient, clock: FrozenClock
) -> None:
    create_body = b'{"name":  "web",   "description": "edge\\u00e9"}'  # hashed as sent, not as re-encoded
    created = api.post("/api/v1/teams", content=create_body, headers=JSON)
    assert created.status_code == 201
    team_id = created.json()["id"]
    clock.advance(timedelta(seconds=1))
    put_body = b'{"description": "one"}'
    assert api.put(f"/api/v1/teams/{team_id}", content=put_body, headers=JSON).status_code == 200
    clock.advance(timedelta(seconds=1))
    patch_body = b'{"description":"two"}'
    assert api.patch(f"/api/v1/teams/{team_id}", content=patch_body, headers=JSON).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert api.delete(f"/api/v1/teams/{team_id}").status_code == 204

    events = api_events(ctx)
    assert [(e.action, e.details["status"]) for e in events] == [
        ("api_post", 201),
        ("api_put", 200),
        ("api_patch", 200),
        ("api_delete", 204),
    ]
    assert [e.resource_id for e in events] == ["/api/v1/teams"] + [f"/api/v1/teams/{team_id}"] * 3
    assert [e.details["body_hash"] for e in events] == [
        sha256(create_body),
        sha256(put_body),
        sha256(patch_body),
        sha256(b""),
    ]
    assert [e.details["method"] for e in events] == ["POST", "PUT", "PATCH", "DELETE"]
    assert [e.timestamp for e in events] == [T0 + timedelta(seconds=i) for i in range(4)]
    for event in events:
        assert (event.actor, event.actor_type, event.resource_type) == ("admin", ActorType.USER, "api")
        assert event.details["path"] == event.resource_id
        assert isinstance(event.details["latency_ms"], int | float)
        assert event.details["latency_ms"] >= 0
        assert event.details["request_id"]


def test_a_body_the_handler_never_reads_is_still_hashed(ctx: AppContext, api: TestClient) -> None:
    body = b'{"name": "web"}'
    assert api.post("/api/v1/teams/t-1", content=body, headers=JSON).status_code == 405
    [event] = api_events(ctx)
    assert event.details["status"] == 405
    assert event.details["body_hash"] == sha256(body)


def test_the_request_id_in_the_row_is_the_one_returned_to_the_client(ctx: AppContext, api: TestClient) -> None:
    response = api.post("/api/v1/teams", json={"name": "web"}, headers={"X-Request-ID": "req-abc.123"})
    assert response.headers["x-request-id"] == "req-abc.123"
    [event] = api_events(ctx)
    assert event.details["request_id"] == "req-abc.123"


def test_the_recorded_path_leaves_out_the_query_string(ctx: AppContext, api: TestClient) -> None:
    assert api.post("/api/v1/teams?token=s3cret&dry_run=1", json={"name": "web"}).status_code == 201
    [event] = api_events(ctx)
    assert event.resource_id == "/api/v1/teams"
    assert event.details["path"] == "/api/v1/teams"
    assert "s3cret" not in json.dumps(event.details)


def test_the_actor_is_the_name_of_the_key_that_made_the_call(ctx: AppContext, clock: FrozenClock) -> None:
    with client_for(ctx, "operator") as operator:
        assert operator.post("/api/v1/teams", json={"name": "web"}).status_code == 201
    clock.advance(timedelta(seconds=1))
    with TestClient(
        operator.app, base_url="https://testserver", headers={"X-API-Key": API_KEYS["admin"][0]}
    ) as via_header:
        assert via_header.post("/api/v1/teams", json={"name": "db"}).status_code == 201
    assert [e.actor for e in api_events(ctx)] == ["operator", "admin"]


def test_failed_calls_are_recorded_with_their_status(ctx: AppContext, api: TestClient, clock: FrozenClock) -> None:
    assert api.post("/api/v1/teams", json={"name": "sre"}).status_code == 201
    clock.advance(timedelta(seconds=1))
    duplicate = b'{"name": "sre"}'
    assert api.post("/api/v1/teams", content=duplicate, headers=JSON).status_code == 409
    clock.advance(timedelta(seconds=1))
    invalid = b'{"name": 42, "unknown": true}'
    assert api.post("/api/v1/teams", content=invalid, headers=JSON).status_code == 400
    clock.advance(timedelta(seconds=1))
    assert api.put("/api/v1/teams/t-missing", json={"description": "x"}).status_code == 404
    clock.advance(timedelta(seconds=1))
    assert api.delete("/api/v1/teams/t-missing").status_code == 404

    events = api_events(ctx)
    assert [e.details["status"] for e in events] == [201, 409, 400, 404, 404]
    assert events[1].details["body_hash"] == sha256(duplicate)
    assert events[2].details["body_hash"] == sha256(invalid)
    assert events[3].resource_id == "/api/v1/teams/t-missing"


def test_read_only_calls_are_not_recorded(ctx: AppContext, api: TestClient) -> None:
    team = api.post("/api/v1/teams", json={"name": "web"}).json()
    before = len(all_events(ctx))
    assert api.get("/api/v1/teams").status_code == 200
    assert api.get(f"/api/v1/teams/{team['id']}").status_code == 200
    assert api.get("/api/v1/teams/t-missing").status_code == 404
    assert api.get("/api/v1/audit").status_code == 200
    assert api.head("/api/v1/teams").status_code in (200, 405)
    assert len(all_events(ctx)) == before


def test_unauthenticated_calls_are_not_recorded(ctx: AppContext) -> None:
    with client_for(ctx, None) as anonymous:
        assert anonymous.post("/api/v1/teams", json={"name": "a"}).status_code == 401
        assert (
            anonymous.post("/api/v1/teams", json={"name": "b"}, headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        assert anonymous.delete("/api/v1/teams/x", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code == 401
        assert anonymous.put("/api/v1/teams/x", json={}, headers={"X-API-Key": "wrong"}).status_code == 401
    assert all_events(ctx) == []


# --- append-only ---------------------------------------------------------------------------------


def test_audit_rows_cannot_be_updated_or_deleted(ctx: AppContext) -> None:
    event = record(ctx, ALICE, "certificate_created")
    for statement in (
        "UPDATE audit_events SET actor = 'mallory'",
        "UPDATE audit_events SET details = '{}' WHERE id = :id",
        "DELETE FROM audit_events WHERE id = :id",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"), ctx.db.begin() as session:
            session.execute(text(statement), {"id": event.id})
    [kept] = all_events(ctx)
    assert (kept.id, kept.actor, kept.action) == (event.id, "alice", "certificate_created")


def test_the_orm_cannot_change_or_remove_an_audit_row_either(ctx: AppContext) -> None:
    event = record(ctx, ALICE, "certificate_created")

    def rewrite() -> None:
        with ctx.db.begin() as session:
            row = session.get(AuditEvent, event.id)
            assert row is not None
            row.action = "nothing_happened"

    def remove() -> None:
        with ctx.db.begin() as session:
            session.delete(session.get(AuditEvent, event.id))

    with pytest.raises(DBAPIError, match="append-only"):
        rewrite()
    with pytest.raises(DBAPIError, match="append-only"):
        remove()
    assert [e.action for e in all_events(ctx)] == ["certificate_created"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
def test_audit_table_cannot_be_truncated_on_postgresql(ctx: AppContext) -> None:
    assert ctx.db.dialect == "postgresql"
    record(ctx, ALICE, "certificate_created")
    with pytest.raises(DBAPIError, match="append-only"), ctx.db.begin() as session:
        session.execute(text("TRUNCATE audit_events"))
    assert len(all_events(ctx)) == 1


def test_inserting_new_rows_stays_allowed(ctx: AppContext, clock: FrozenClock) -> None:
    record(ctx, ALICE, "a")
    clock.advance(timedelta(seconds=1))
    record(ctx, ALICE, "b")
    assert [e.action for e in all_events(ctx)] == ["a", "b"]


def test_a_row_recorded_in_a_failed_transaction_is_not_kept(ctx: AppContext) -> None:
    def change_that_fails() -> None:
        with ctx.db.begin() as session:
            AuditRecorder(session, ctx.clock).record(ALICE, "certificate_created", "certificate", "mc-1")
            session.flush()
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change_that_fails()
    assert all_events(ctx) == []


# --- GET /api/v1/audit -----------------------------------------------------------------------------


@pytest.fixture
def trail(ctx: AppContext, clock: FrozenClock) -> list[AuditEvent]:
    """Six events a minute apart on 2026-01-01 (00:00 … 00:05) and one on 2026-01-02 12:00."""
    specs: list[tuple[Actor, str, str, str]] = [
        (ALICE, "certificate_created", "certificate", "mc-1"),
        (ALICE, "certificate_updated", "certificate", "mc-1"),
        (SYSTEM_ACTOR, "renewal_triggered", "certificate", "mc-1"),
        (AGENT, "job_status_reported", "job", "job-1"),
        (ALICE, "certificate_created", "certificate", "mc-2"),
        (SYSTEM_ACTOR, "job_timeout", "job", "job-2"),
    ]
    events = []
    for actor, action, resource_type, resource_id in specs:
        events.append(record(ctx, actor, action, resource_type, resource_id))
        clock.advance(timedelta(minutes=1))
    clock.advance(timedelta(days=1, hours=12) - timedelta(minutes=6))
    events.append(record(ctx, ALICE, "certificate_archived", "certificate", "mc-2"))
    return events


def ids(response: Any) -> list[str]:
    return [e["id"] for e in response.json()["data"]]


def newest_first(events: list[AuditEvent]) -> list[str]:
    return [e.id for e in sorted(events, key=lambda e: (e.timestamp, e.id), reverse=True)]


def test_list_is_newest_first_with_the_true_total(api: TestClient, trail: list[AuditEvent]) -> None:
    page = api.get("/api/v1/audit", params={"per_page": 2}).json()
    assert page["total"] == 7
    assert (page["page"], page["per_page"]) == (1, 2)
    assert [e["id"] for e in page["data"]] == newest_first(trail)[:2]
    second = api.get("/api/v1/audit", params={"per_page": 2, "page": 4}).json()
    assert [e["id"] for e in second["data"]] == newest_first(trail)[6:]
    assert second["total"] == 7
    first = page["data"][0]
    assert first == {
        "id": trail[6].id,
        "actor": "alice",
        "actor_type": "User",
        "action": "certificate_archived",
        "resource_type": "certificate",
        "resource_id": "mc-2",
        "details": {},
        "timestamp": "2026-01-02T12:00:00Z",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "alice"}, [0, 1, 4, 6]),
        ({"actor": "system"}, [2, 5]),
        ({"actor_type": "Agent"}, [3]),
        ({"actor_type": "System"}, [2, 5]),
        ({"action": "certificate_created"}, [0, 4]),
        ({"resource_type": "job"}, [3, 5]),
        ({"resource_id": "mc-1"}, [0, 1, 2]),
        ({"resource_type": "certificate", "resource_id": "mc-2", "actor": "alice"}, [4, 6]),
        ({"actor": "nobody"}, []),
    ],
)
def test_filters_select_matching_rows_with_their_total(
    api: TestClient, trail: list[AuditEvent], params: dict[str, str], expected: list[int]
) -> None:
    response = api.get("/api/v1/audit", params=params)
    assert response.status_code == 200
    assert ids(response) == newest_first([trail[i] for i in expected])
    assert response.json()["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": "2026-01-01T00:02:00Z"}, [2, 3, 4, 5, 6]),  # inclusive lower bound
        ({"until": "2026-01-01T00:02:00Z"}, [0, 1, 2]),  # inclusive upper bound
        ({"since": "2026-01-01T00:01:30Z", "until": "2026-01-01T00:03:00Z"}, [2, 3]),
        ({"since": "2026-01-01T05:32:00+05:30"}, [2, 3, 4, 5, 6]),  # an offset is the same instant
        ({"since": "2025-12-31T19:03:00-05:00", "until": "2026-01-01T00:04:00.000000Z"}, [3, 4]),
        ({"since": "2026-01-02"}, [6]),  # a date is 00:00:00 UTC
        ({"until": "2026-01-02"}, [0, 1, 2, 3, 4, 5]),
        ({"since": "2026-01-01", "until": "2026-01-01"}, [0]),
        ({"since": "2026-01-03"}, []),
    ],
)
def test_time_filters_accept_rfc3339_and_dates(
    api: TestClient, trail: list[AuditEvent], params: dict[str, str], expected: list[int]
) -> None:
    response = api.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    assert ids(response) == newest_first([trail[i] for i in expected])
    assert response.json()["total"] == len(expected)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "yesterday"),
        ("since", "2026-13-01"),
        ("until", "2026-01-01 10:00"),
        ("until", "2026-01-01T10:00:00"),  # no offset: ambiguous
        ("since", "1767225600"),
    ],
)
def test_a_bad_time_filter_is_a_400_naming_the_parameter(
    api: TestClient, trail: list[AuditEvent], name: str, value: str
) -> None:
    response = api.get("/api/v1/audit", params={name: value})
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{name} must be an RFC 3339 time")


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00+01:00"},
        {"cursor": base64.urlsafe_b64encode(b"0001-01-01T00:00:00+01:00|audit-1").decode(), "page_size": "5"},
    ],
    ids=["since", "cursor"],
)
def test_a_time_outside_the_utc_range_is_a_400_not_a_crash(api: TestClient, params: dict[str, str]) -> None:
    assert api.get("/api/v1/audit", params=params).status_code == 400


def test_an_unknown_actor_type_is_a_400(api: TestClient) -> None:
    response = api.get("/api/v1/audit", params={"actor_type": "Robot"})
    assert response.status_code == 400
    assert "actor_type" in response.json()["message"]


def test_one_event_is_found_by_its_id(api: TestClient, trail: list[AuditEvent]) -> None:
    response = api.get(f"/api/v1/audit/{trail[3].id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["actor"], body["actor_type"], body["action"], body["resource_id"]) == (
        trail[3].id,
        "agent-web-01",
        "Agent",
        "job_status_reported",
        "job-1",
    )
    assert datetime.fromisoformat(body["timestamp"]) == T0 + timedelta(minutes=3)


def test_an_unknown_event_id_is_a_404_even_when_it_names_a_resource(api: TestClient, trail: list[AuditEvent]) -> None:
    """The original looked the id up as a resource_id; `mc-1` has events but is not an event id."""
    for missing in ("audit-doesnotexist", "mc-1"):
        response = api.get(f"/api/v1/audit/{missing}")
        assert response.status_code == 404
        assert response.json()["message"] == f"audit event {missing} not found"


# --- cursor pagination ------------------------------------------------------------------------------


@pytest.fixture
def crowded_trail(ctx: AppContext, clock: FrozenClock) -> list[AuditEvent]:
    """Eleven events where several share a timestamp, so order within a tie depends on the id alone."""
    events = []
    for group_size in (3, 1, 4, 2, 1):
        for _ in range(group_size):
            events.append(record(ctx, ALICE, "certificate_updated", "certificate", f"mc-{len(events)}"))
        clock.advance(timedelta(seconds=1))
    return events


def walk(api: TestClient, page_size: int, **params: str) -> tuple[list[str], list[dict[str, Any]]]:
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        body = api.get("/api/v1/audit", params={**params, "cursor": cursor, "page_size": page_size}).json()
        pages.append(body)
        seen += [e["id"] for e in body["data"]]
        if "next_cursor" not in body:
            return seen, pages
        cursor = body["next_cursor"]
    raise AssertionError("the cursor walk never ended")


@pytest.mark.parametrize("page_size", [1, 3, 4, 11, 50])
def test_walking_the_cursor_returns_every_row_once_newest_first(
    api: TestClient, crowded_trail: list[AuditEvent], page_size: int
) -> None:
    seen, pages = walk(api, page_size)
    assert seen == newest_first(crowded_trail)
    assert len(pages) == -(-len(crowded_trail) // page_size)
    for page in pages:
        assert page["total"] == len(crowded_trail)
        assert page["page_size"] == page_size
        assert len(page["data"]) <= page_size
    assert all("next_cursor" in page for page in pages[:-1])
    assert "next_cursor" not in pages[-1]


def test_ties_on_the_timestamp_are_broken_by_id_descending(api: TestClient, crowded_trail: list[AuditEvent]) -> None:
    tied = [e for e in crowded_trail if e.timestamp == T0 + timedelta(seconds=2)]  # the group of four
    assert len(tied) == 4
    seen, _ = walk(api, 2)
    positions = [seen.index(e.id) for e in tied]
    assert [seen[p] for p in sorted(positions)] == sorted((e.id for e in tied), reverse=True)
    assert sorted(positions) == list(range(min(positions), min(positions) + 4))  # contiguous


def test_the_cursor_walk_respects_filters(api: TestClient, trail: list[AuditEvent]) -> None:
    seen, pages = walk(api, 1, actor="alice")
    assert seen == newest_first([trail[i] for i in (0, 1, 4, 6)])
    assert {page["total"] for page in pages} == {4}


def test_rows_written_during_a_walk_neither_repeat_nor_shift_older_rows(
    ctx: AppContext, api: TestClient, crowded_trail: list[AuditEvent], clock: FrozenClock
) -> None:
    first = api.get("/api/v1/audit", params={"cursor": "", "page_size": 4}).json()
    record(ctx, ALICE, "certificate_created")  # newer than everything already listed
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        body = api.get("/api/v1/audit", params={"cursor": cursor, "page_size": 4}).json()
        rest += [e["id"] for e in body["data"]]
        cursor = body.get("next_cursor")
    assert [e["id"] for e in first["data"]] + rest == newest_first(crowded_trail)


def test_an_empty_cursor_with_a_page_size_starts_at_the_newest_row(
    api: TestClient, crowded_trail: list[AuditEvent]
) -> None:
    body = api.get("/api/v1/audit", params={"cursor": "", "page_size": 2}).json()
    assert [e["id"] for e in body["data"]] == newest_first(crowded_trail)[:2]
    assert "page" not in body


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%%%",
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00").decode(),  # no id
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|audit-1").decode(),  # naive time
        base64.urlsafe_b64encode(b"yesterday|audit-1").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
    ],
)
def test_a_cursor_the_server_did_not_issue_is_a_400(api: TestClient, cursor: str) -> None:
    response = api.get("/api/v1/audit", params={"cursor": cursor, "page_size": 5})
    assert response.status_code == 400
    assert response.json()["message"] == "cursor is not a cursor this server returned"


def test_page_sizes_above_500_are_refused(api: TestClient) -> None:
    refused = api.get("/api/v1/audit", params={"page_size": 501})
    assert refused.status_code == 400
    assert "500" in refused.json()["message"]
    assert api.get("/api/v1/audit", params={"per_page": 501}).status_code == 400
    assert api.get("/api/v1/audit", params={"page_size": 500}).status_code == 200


# --- redaction -----------------------------------------------------------------------------------------


def test_credentials_and_pii_are_replaced_at_any_depth_and_listed() -> None:
    details = {
        "certificate_id": "mc-1",
        "password": "hunter2",
        "Authorization": "Bearer abc",
        "owner": {"email": "alice@example.com", "team": "web", "name": "Alice"},
        "targets": [
            {"id": "t-1", "config": {"api_key": "k1", "host": "lb-1"}},
            {"id": "t-2", "ip_address": "10.0.0.1"},
        ],
        "credentials": {"user": "u", "secret": "s"},  # the whole subtree goes
        "count": 3,
    }
    clean = redact(details)
    assert clean == {
        "certificate_id": "mc-1",
        "password": CREDENTIAL,
        "Authorization": CREDENTIAL,
        "owner": {"email": PII, "team": "web", "name": PII},
        "targets": [
            {"id": "t-1", "config": {"api_key": CREDENTIAL, "host": "lb-1"}},
            {"id": "t-2", "ip_address": PII},
        ],
        "credentials": CREDENTIAL,
        "count": 3,
        "redacted_keys": sorted(
            [
                "Authorization",
                "credentials",
                "owner.email",
                "owner.name",
                "password",
                "targets[0].config.api_key",
                "targets[1].ip_address",
            ]
        ),
    }
    assert details["password"] == "hunter2"  # the caller's dict is left alone


def test_tuples_are_walked_like_lists() -> None:
    """Callers pass tuples too; the JSON column stores them as arrays, so secrets inside must not slip by."""
    assert redact({"targets": ({"id": "t-1", "password": "pw"}, "plain")}) == {
        "targets": [{"id": "t-1", "password": CREDENTIAL}, "plain"],
        "redacted_keys": ["targets[0].password"],
    }


def test_nothing_sensitive_means_no_redacted_keys() -> None:
    assert redact({"certificate_id": "mc-1", "sans": ["a.example", "b.example"]}) == {
        "certificate_id": "mc-1",
        "sans": ["a.example", "b.example"],
    }


@pytest.mark.parametrize(
    "key",
    ["token", "ACCESS_TOKEN", "private_key_pem", "eab_kid", "hmac_key", "bearer", "cert_pem", "client_secret"],
)
def test_every_credential_key_is_matched_case_insensitively(key: str) -> None:
    assert redact({key: "x"}) == {key: CREDENTIAL, "redacted_keys": [key]}


@pytest.mark.parametrize("key", ["phone_number", "Date_Of_Birth", "zipcode", "surname", "street_address", "ip"])
def test_every_pii_key_is_matched_case_insensitively(key: str) -> None:
    assert redact({key: "x"}) == {key: PII, "redacted_keys": [key]}


def test_recorded_details_are_stored_redacted(ctx: AppContext) -> None:
    secrets = {"name": "web-01.example", "bootstrap_token": "bt-8f3a9c1d", "os": "linux"}
    record(ctx, ALICE, "agent_registered", "agent", "ag-1", secrets)
    [event] = all_events(ctx)
    assert event.details == {
        "name": PII,
        "bootstrap_token": CREDENTIAL,
        "os": "linux",
        "redacted_keys": ["bootstrap_token", "name"],
    }
    with ctx.db.begin() as session:
        raw = session.execute(text("SELECT details FROM audit_events")).scalar_one()
    stored = raw if isinstance(raw, str) else json.dumps(raw)
    assert "bt-8f3a9c1d" not in stored
    assert "web-01.example" not in stored


SENSITIVE = ["password", "token", "api_key", "email", "name", "Secret", "IP"]
_keys = st.sampled_from([*SENSITIVE, "id", "status", "config", "items", "host"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=20,
)


def _leaks(value: Any) -> bool:
    """True if any sensitive key still holds something other than a redaction marker."""
    if isinstance(value, dict):
        return any(
            (k.lower() in {s.lower() for s in SENSITIVE} and v not in (CREDENTIAL, PII)) or _leaks(v)
            for k, v in value.items()
            if k != "redacted_keys"
        )
    if isinstance(value, list | tuple):
        return any(_leaks(v) for v in value)
    return False


@settings(deadline=None)
@given(details=st.dictionaries(_keys, _json, max_size=5))
def test_no_sensitive_value_survives_redaction(details: dict[str, Any]) -> None:
    clean = redact(details)
    assert not _leaks(clean)
    assert redact(clean) == clean  # redacting twice changes nothing
    listed = clean.get("redacted_keys", [])
    assert listed == sorted(listed)
    assert len(listed) == len(set(listed))
