"""The request chain (core.md §4.2, §4.3): security headers, request IDs, error shapes, body limit, CORS,
rate limiting."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx2 as httpx  # what TestClient returns
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from certctl.api import ratelimit
from certctl.api.ratelimit import IDLE_EVICTION_SECONDS, RateLimiter, retry_after_header
from certctl.app import create_app
from certctl.clock import FrozenClock
from certctl.context import AppContext
from tests.conftest import API_KEYS

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer-when-downgrade",
}
ContextFactory = Callable[..., AppContext]


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEYS[role][0]}"}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{name} on a {response.status_code}"
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "request_id"}
    assert body["error"] == error
    assert body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def app_with_test_routes(context: AppContext) -> FastAPI:
    """The real app plus a route that crashes and one that reads a raw body."""
    app = create_app(context)

    async def crash() -> None:
        raise RuntimeError("database password is hunter2")

    async def body_length(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    app.add_api_route("/api/v1/test/crash", crash, methods=["GET"])
    app.add_api_route("/api/v1/test/body", body_length, methods=["POST"])
    return app


@pytest.fixture
def limited(context_factory: ContextFactory, clock: FrozenClock) -> Iterator[Callable[..., TestClient]]:
    """Clients on an app whose rate limit is 1 request/s with a burst of 2, on the frozen clock."""
    context = context_factory(clock=clock, rate_limit_rps=1, rate_limit_burst=2)
    app = create_app(context)
    opened: list[TestClient] = []

    def client(role: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any) -> TestClient:
        headers = {**(bearer(role) if role else {}), **(headers or {})}
        test_client = TestClient(app, headers=headers, base_url="https://testserver", **kwargs)
        opened.append(test_client)
        return test_client

    yield client
    for test_client in opened:
        test_client.close()


def chunks(total: int, size: int = 512) -> Iterator[bytes]:
    """A body sent without Content-Length (chunked transfer encoding)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


# Security headers on every kind of response -------------------------------------------------------------


def test_security_headers_on_success_and_on_every_error_status(context_factory: ContextFactory) -> None:
    context = context_factory(max_body_size=1024)
    app = app_with_test_routes(context)
    admin = TestClient(app, headers=bearer("admin"), base_url="https://testserver")
    viewer = TestClient(app, headers=bearer("viewer"), base_url="https://testserver")
    anonymous = TestClient(app, base_url="https://testserver")
    responses = {
        200: admin.get("/api/v1/auth/check"),
        201: admin.post("/api/v1/teams", json={"name": "headers"}),
        401: anonymous.get("/api/v1/teams"),
        403: viewer.post("/api/v1/teams", json={"name": "nope"}),
        404: admin.get("/api/v1/no-such-thing"),
        405: admin.delete("/api/v1/auth/check"),
        413: admin.post("/api/v1/teams", content=b"{" + b" " * 2048 + b"}"),
        500: admin.get("/api/v1/test/crash"),
    }
    for status, response in responses.items():
        assert response.status_code == status, (status, response.text)
        assert_security_headers(response)
    preflight = anonymous.options("/api/v1/teams", headers={"Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert_security_headers(preflight)
    public = anonymous.get("/health")
    assert public.status_code == 200
    assert_security_headers(public)


def test_security_headers_on_429(limited: Callable[..., TestClient]) -> None:
    client = limited("operator")
    statuses = [client.get("/api/v1/auth/check").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert_security_headers(client.get("/api/v1/auth/check"))


# Errors in one JSON shape --------------------------------------------------------------------------------


def test_handler_crash_is_a_json_500_that_hides_the_exception(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(app_with_test_routes(context), headers=bearer("admin"), base_url="https://testserver")
    with caplog.at_level(logging.INFO, logger="certctl.http"):
        response = client.get("/api/v1/test/crash", headers={"X-Request-ID": "crash-1"})
    body = assert_error(response, 500, "Internal Server Error")
    assert body == {"error": "Internal Server Error", "message": "Internal Server Error", "request_id": "crash-1"}
    assert "hunter2" not in response.text
    crashed = [r for r in caplog.records if r.msg == "request.crashed"]
    assert len(crashed) == 1
    assert crashed[0].exc_info is not None
    assert getattr(crashed[0], "request_id", None) == "crash-1"
    logged = [r for r in caplog.records if r.msg == "request"]
    assert [(getattr(r, "status", None), getattr(r, "request_id", None)) for r in logged] == [(500, "crash-1")]


def test_unknown_api_path_is_a_json_404(client: TestClient) -> None:
    body = assert_error(client.get("/api/v1/certificates-that-do-not-exist"), 404, "Not Found")
    assert "/api/v1/certificates-that-do-not-exist" in body["message"]


def test_wrong_method_is_a_json_405_with_allow(client: TestClient) -> None:
    response = client.delete("/api/v1/teams")
    assert_error(response, 405, "Method Not Allowed")
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert allowed == {"GET", "POST"}


def test_request_line_is_logged_once_with_status_and_duration(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="certctl.http"):
        client.get("/api/v1/teams", headers={"X-Request-ID": "log-me"})
    lines = [r for r in caplog.records if r.name == "certctl.http" and r.msg == "request"]
    assert len(lines) == 1
    fields = lines[0].__dict__
    assert (fields["request_id"], fields["method"], fields["path"], fields["status"]) == (
        "log-me",
        "GET",
        "/api/v1/teams",
        200,
    )
    assert fields["duration_ms"] >= 0


# X-Request-ID ---------------------------------------------------------------------------------------------


VALID_REQUEST_IDS = ["abc", "A-b_c.9", "x" * 64, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]
INVALID_REQUEST_IDS = ["", "x" * 65, "has space", "semi;colon", "new\\nline", "a/b", 'quote"', "<script>"]


def test_valid_client_request_id_is_echoed(client: TestClient) -> None:
    for value in VALID_REQUEST_IDS:
        assert client.get("/health", headers={"X-Request-ID": value}).headers["x-request-id"] == value
        refused = client.get("/api/v1/teams", headers={"X-Request-ID": value, "Authorization": "Bearer wrong"})
        assert assert_error(refused, 401, "Invalid API key")["request_id"] == value


def test_invalid_client_request_id_is_replaced_by_a_uuid4(client: TestClient) -> None:
    for value in INVALID_REQUEST_IDS:
        response = client.get("/api/v1/no-such-route", headers={"X-Request-ID": value})
        request_id = response.headers["x-request-id"]
        assert request_id != value
        assert uuid.UUID(request_id).version == 4, value
        assert assert_error(response, 404, "Not Found")["request_id"] == request_id


def test_without_a_client_request_id_each_response_gets_a_fresh_one(client: TestClient) -> None:
    first, second = (client.get("/health").headers["x-request-id"] for _ in range(2))
    assert first != second
    assert uuid.UUID(first).version == uuid.UUID(second).version == 4


def test_request_id_header_appears_once(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "once"})
    assert response.headers.get_list("x-request-id") == ["once"]


# Body limit -----------------------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_before_authentication(context_factory: ContextFactory) -> None:
    client = TestClient(app_with_test_routes(context_factory(max_body_size=1024)), base_url="https://testserver")
    response = client.post("/api/v1/test/body", content=b"x" * 1025)  # no key at all: the limit comes first
    body = assert_error(response, 413, "Request Entity Too Large")
    assert "1024" in body["message"]


def test_body_at_the_limit_is_accepted(context_factory: ContextFactory) -> None:
    app = app_with_test_routes(context_factory(max_body_size=1024))
    client = TestClient(app, headers=bearer("admin"), base_url="https://testserver")
    assert client.post("/api/v1/test/body", content=b"x" * 1024).json() == {"length": 1024}
    assert client.post("/api/v1/test/body", content=chunks(1024)).json() == {"length": 1024}


@pytest.mark.parametrize("path", ["/api/v1/test/body", "/api/v1/teams"])
def test_streamed_body_over_the_limit_is_413(context_factory: ContextFactory, path: str) -> None:
    """No Content-Length: the limit is enforced while reading, also where FastAPI parses JSON (which
    would otherwise turn the overflow into 400 "There was an error parsing the body")."""
    app = app_with_test_routes(context_factory(max_body_size=1024))
    client = TestClient(app, headers=bearer("admin"), base_url="https://testserver")
    response = client.post(path, content=chunks(4096), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    body = assert_error(response, 413, "Request Entity Too Large")
    assert "1024" in body["message"]
    assert_security_headers(response)


def test_streamed_overflow_creates_nothing(context_factory: ContextFactory) -> None:
    app = app_with_test_routes(context_factory(max_body_size=1024))
    client = TestClient(app, headers=bearer("admin"), base_url="https://testserver")
    padding = " " * 2048

    def team_json() -> Iterator[bytes]:
        yield b'{"name": "too-big",'
        yield f'"description": "{padding}"}}'.encode()

    assert (
        client.post("/api/v1/teams", content=team_json(), headers={"Content-Type": "application/json"}).status_code
        == 413
    )
    assert client.get("/api/v1/teams").json()["total"] == 0


# CORS -------------------------------------------------------------------------------------------------


def test_no_cors_headers_by_default(client: TestClient) -> None:
    response = client.get("/api/v1/teams", headers={"Origin": "https://ui.example"})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("access-control-")]


def test_listed_origin_is_echoed_with_vary(context_factory: ContextFactory) -> None:
    context = context_factory(cors_origins=["https://ui.example", "https://other.example"])
    client = TestClient(create_app(context), headers=bearer("viewer"), base_url="https://testserver")
    response = client.get("/api/v1/teams", headers={"Origin": "https://ui.example"})
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    assert "Origin" in response.headers["vary"]
    assert "Authorization" in response.headers["access-control-allow-headers"]
    # Errors carry the CORS headers too, so the browser lets the UI read them.
    refused = client.post("/api/v1/teams", json={"name": "x"}, headers={"Origin": "https://ui.example"})
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == "https://ui.example"


def test_unlisted_origin_gets_no_cors_headers(context_factory: ContextFactory) -> None:
    context = context_factory(cors_origins=["https://ui.example"])
    client = TestClient(create_app(context), headers=bearer("viewer"), base_url="https://testserver")
    for origin in ("https://evil.example", "https://ui.example.evil.example", "http://ui.example"):
        response = client.get("/api/v1/teams", headers={"Origin": origin})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers, origin
        preflight = client.options("/api/v1/teams", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers, origin


def test_wildcard_origin_allows_any(context_factory: ContextFactory) -> None:
    context = context_factory(cors_origins="*")
    client = TestClient(create_app(context), headers=bearer("viewer"), base_url="https://testserver")
    response = client.get("/api/v1/teams", headers={"Origin": "https://anywhere.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_preflight_is_204_without_a_key(context_factory: ContextFactory) -> None:
    context = context_factory(cors_origins=["https://ui.example"])
    anonymous = TestClient(create_app(context), base_url="https://testserver")
    response = anonymous.options(
        "/api/v1/teams",
        headers={
            "Origin": "https://ui.example",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    assert "DELETE" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-max-age"] == "86400"
    # A plain OPTIONS (not a preflight) is no way around authentication.
    assert anonymous.options("/api/v1/teams").status_code == 401


# Rate limiting ----------------------------------------------------------------------------------------


def test_each_key_has_its_own_bucket_and_the_clock_refills_it(
    limited: Callable[..., TestClient], clock: FrozenClock
) -> None:
    admin, operator = limited("admin"), limited("operator")
    assert admin.get("/api/v1/auth/check").status_code == 200
    assert admin.get("/api/v1/auth/check").status_code == 200
    refused = admin.get("/api/v1/auth/check")
    body = assert_error(refused, 429, "Rate limit exceeded")
    assert body["message"] == "Rate limit exceeded"
    assert int(refused.headers["retry-after"]) >= 1

    assert operator.get("/api/v1/auth/check").status_code == 200  # a separate bucket

    clock.advance(timedelta(milliseconds=500))
    assert admin.get("/api/v1/auth/check").status_code == 429  # half a token is not a token
    clock.advance(timedelta(milliseconds=500))
    assert admin.get("/api/v1/auth/check").status_code == 200
    assert admin.get("/api/v1/auth/check").status_code == 429
    clock.advance(timedelta(hours=1))  # refills to the burst, not beyond
    assert [admin.get("/api/v1/auth/check").status_code for _ in range(3)] == [200, 200, 429]


def test_writes_and_reads_share_the_key_bucket(limited: Callable[..., TestClient]) -> None:
    operator = limited("operator")
    assert operator.post("/api/v1/teams", json={"name": "one"}).status_code == 201
    assert operator.get("/api/v1/teams").status_code == 200
    assert operator.post("/api/v1/teams", json={"name": "two"}).status_code == 429
    assert limited("admin").get("/api/v1/teams").json()["total"] == 1  # the refused write did nothing


def test_public_routes_are_limited_per_client_ip(limited: Callable[..., TestClient], clock: FrozenClock) -> None:
    first = limited(client=("192.0.2.1", 50000))
    second = limited(client=("192.0.2.2", 50000))
    assert [first.get("/health").status_code for _ in range(3)] == [200, 200, 429]
    assert first.get("/api/v1/version").status_code == 429  # one bucket per IP across public routes
    assert second.get("/health").status_code == 200
    clock.advance(timedelta(seconds=1))
    assert first.get("/health").status_code == 200


def test_authenticated_calls_do_not_use_the_ip_bucket(limited: Callable[..., TestClient]) -> None:
    admin = limited("admin", client=("192.0.2.9", 1))
    assert [admin.get("/api/v1/auth/check").status_code for _ in range(3)] == [200, 200, 429]
    assert [admin.get("/health").status_code for _ in range(2)] == [200, 200]


def test_invalid_keys_get_401_and_consume_no_bucket(limited: Callable[..., TestClient]) -> None:
    wrong = limited(headers={"Authorization": "Bearer not-a-key"})
    for _ in range(5):
        assert_error(wrong.get("/api/v1/auth/check"), 401, "Invalid API key")
    admin = limited("admin")
    assert [admin.get("/api/v1/auth/check").status_code for _ in range(2)] == [200, 200]
    assert [limited().get("/health").status_code for _ in range(2)] == [200, 200]


def test_per_user_overrides_apply_to_keys_not_to_ips(context_factory: ContextFactory, clock: FrozenClock) -> None:
    context = context_factory(
        clock=clock, rate_limit_rps=1, rate_limit_burst=1, rate_limit_per_user_rps=2, rate_limit_per_user_burst=3
    )
    app = create_app(context)
    admin = TestClient(app, headers=bearer("admin"), base_url="https://testserver")
    anonymous = TestClient(app, base_url="https://testserver")
    assert [admin.get("/api/v1/auth/check").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [anonymous.get("/health").status_code for _ in range(2)] == [200, 429]
    clock.advance(timedelta(milliseconds=500))  # 2 rps: one token back for the key, half a token for the IP
    assert admin.get("/api/v1/auth/check").status_code == 200
    assert anonymous.get("/health").status_code == 429


def test_rate_limiting_can_be_switched_off(context_factory: ContextFactory) -> None:
    context = context_factory(rate_limit_enabled=False, rate_limit_rps=1, rate_limit_burst=1)
    client = TestClient(create_app(context), headers=bearer("admin"), base_url="https://testserver")
    assert {client.get("/api/v1/auth/check").status_code for _ in range(5)} == {200}


def test_limiter_reports_the_wait_until_the_next_token() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(rate=0.5, burst=1, monotonic=clock.monotonic)
    assert limiter.acquire("k") == 0
    assert limiter.acquire("k") == pytest.approx(2.0)
    clock.advance(timedelta(seconds=1.5))
    assert limiter.acquire("k") == pytest.approx(0.5)
    assert retry_after_header(0.5) == "1"
    assert retry_after_header(2.01) == "3"
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0, burst=1, monotonic=clock.monotonic)


def _sweep(limiter: RateLimiter, key: str) -> None:
    # Sweeps run every _SWEEP_EVERY acquisitions; drive exactly one through another key.
    for _ in range(ratelimit._SWEEP_EVERY):
        limiter.acquire(key)


def test_idle_buckets_are_evicted_after_ten_minutes() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(rate=1000, burst=10, monotonic=clock.monotonic)
    limiter.acquire("idle")
    clock.advance(timedelta(seconds=IDLE_EVICTION_SECONDS - 1))
    _sweep(limiter, "busy")
    assert len(limiter) == 2  # 9 min 59 s idle: kept

    clock.advance(timedelta(seconds=2))
    _sweep(limiter, "busy")
    assert len(limiter) == 1  # "busy" was just used; "idle" is gone
    assert IDLE_EVICTION_SECONDS == 600


def test_a_still_refilling_bucket_is_not_evicted_early() -> None:
    """Eviction must not reset a drained bucket with a slow refill back to a full burst."""
    clock = FrozenClock()
    limiter = RateLimiter(rate=0.01, burst=100, monotonic=clock.monotonic)  # 100 tokens take 10 000 s
    for _ in range(100):
        assert limiter.acquire("slow") == 0
    clock.advance(timedelta(seconds=IDLE_EVICTION_SECONDS + 1))  # 6 tokens back, not 100
    _sweep(limiter, "other")
    granted = sum(1 for _ in range(100) if limiter.acquire("slow") == 0)
    assert granted == 6


def test_nul_characters_are_refused_with_400_not_500(client: TestClient) -> None:
    body = client.post("/api/v1/teams", json={"name": "a\u0000b"})
    assert body.status_code == 400
    assert "NUL" in body.json()["message"]
    query = client.get("/api/v1/owners", params={"team_id": "t\u0000"})
    assert query.status_code == 400
    path = client.get("/api/v1/teams/a%00b")
    assert path.status_code == 400
    assert path.json()["message"] == "NUL characters are not allowed in the URL"
