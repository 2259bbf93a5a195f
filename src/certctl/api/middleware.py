"""The request chain, as pure ASGI middleware (core.md §4.2, our order):

RequestContext (request ID, log line, recovery, security headers) → BodyLimit → CORS → Auth →
RateLimit → Audit → router. Unauthenticated routes skip Auth and Audit and are limited per IP.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certctl.api.errors import error_body
from certctl.api.ratelimit import RateLimiter, retry_after_header
from certctl.security.roles import Actor

log = logging.getLogger("certctl.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PUBLIC_PATHS = frozenset({"/health", "/ready", "/api/v1/auth/info", "/api/v1/version", "/api/v1/openapi.json"})
PUBLIC_PREFIXES = ("/.well-known/pki/", "/.well-known/est", "/scep", "/acme/")
NOT_AUDITED = frozenset({"/health", "/ready", "/api/v1/version"})
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer-when-downgrade"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'",
    ),
]


def is_audited(path: str) -> bool:
    """Heartbeats change nothing but liveness (200 agents would add 288,000 rows a day): not audited."""
    return path not in NOT_AUDITED and not (path.startswith("/api/v1/agents/") and path.endswith("/heartbeat"))


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


async def send_error(
    send: Send,
    scope: Scope,
    status: int,
    message: str,
    *,
    error: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(error_body(status, message, _state(scope).get("request_id", ""), error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Request ID, one JSON log line per request, 500 on a crash, security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
        _state(scope)["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapped(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS, (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                # No identifier or filter holds NUL; PostgreSQL cannot even compare one. Same answer on both.
                await send_error(send_wrapped, scope, 400, "NUL characters are not allowed in the URL")
            else:
                await self.app(scope, receive, send_wrapped)
        except Exception:
            log.exception("request.crashed", extra={"request_id": request_id, "path": scope["path"]})
            if not response_started:
                await send_error(send_wrapped, scope, 500, "Internal Server Error", error="Internal Server Error")
        finally:
            client = scope.get("client")
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "remote_addr": client[0] if client else "",
                },
            )


class BodyLimitMiddleware:
    """413 for a declared or streamed body larger than the limit (the original answered 400)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, scope, 413, _too_large_message(self.max_bytes))
            return
        received = 0
        response_started = False

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counted, send_tracked)
        except _BodyTooLarge:
            if not response_started:
                await send_error(send, scope, 413, _too_large_message(self.max_bytes))


class _BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit.

    An HTTPException, because FastAPI turns any other error raised while it reads the body into
    400 "There was an error parsing the body" (the original's bug); this one it re-raises, and the
    app's handler answers 413 in the common error shape.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_message(max_bytes))


def _too_large_message(max_bytes: int) -> str:
    return f"request body exceeds the {max_bytes}-byte limit"


class CORSMiddleware:
    """Deny by default: no CORS headers unless the origin is listed in CERTCTL_CORS_ORIGINS."""

    ALLOW_METHODS = b"GET, POST, PUT, DELETE, PATCH, OPTIONS"
    ALLOW_HEADERS = b"Content-Type, Authorization, X-API-Key, X-Request-ID"

    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    def _headers_for(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        if not origin or not self.origins:
            return []
        if "*" in self.origins:
            allowed = b"*"
        elif origin in self.origins:
            allowed = origin.encode()
        else:
            return []
        return [
            (b"access-control-allow-origin", allowed),
            (b"vary", b"Origin"),
            (b"access-control-allow-methods", self.ALLOW_METHODS),
            (b"access-control-allow-headers", self.ALLOW_HEADERS),
            (b"access-control-max-age", b"86400"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cors = self._headers_for(headers.get("origin"))
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            # Preflight short-circuits before authentication (browsers send no credentials here).
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and cors:
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors if cors else send)


Authenticator = Callable[[str], Actor | None]


class AuthMiddleware:
    """Bearer (or X-API-Key) authentication on everything but the public routes; viewers read only."""

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Authenticator,
        *,
        anonymous: Actor | None,
        authenticate_in_memory: Authenticator | None = None,
        refusal: Callable[[Actor, str, str], str | None] | None = None,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        # Keys configured in the environment match without I/O: no thread hop for them.
        self.authenticate_in_memory = authenticate_in_memory
        self.anonymous = anonymous  # set when CERTCTL_AUTH_TYPE=none
        self.refusal = refusal  # confines narrow credentials (agents, bootstrap token) to their routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        actor = self.anonymous or await self._authenticate(scope, send)
        if actor is None:
            return
        if scope["method"] not in SAFE_METHODS and not actor.role.can_write:
            await send_error(send, scope, 403, f"the {actor.role.value} role is read-only")
            return
        if self.refusal is not None and (reason := self.refusal(actor, scope["method"], scope["path"])):
            await send_error(send, scope, 403, reason)
            return
        _state(scope)["actor"] = actor
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope, send: Send) -> Actor | None:
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        token = headers.get("x-api-key")
        challenge = [(b"www-authenticate", b'Bearer realm="certctl"')]
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                await send_error(
                    send,
                    scope,
                    401,
                    "Authorization header must be 'Bearer <api key>'",
                    error="Invalid authorization header",
                    headers=challenge,
                )
                return None
            token = value.strip()
        if not token:
            await send_error(
                send,
                scope,
                401,
                "Authorization header required",
                error="Authorization header required",
                headers=challenge,
            )
            return None
        actor = self.authenticate_in_memory(token) if self.authenticate_in_memory else None
        if actor is None:
            actor = await anyio.to_thread.run_sync(self.authenticate, token)
        if actor is None:
            await send_error(send, scope, 401, "Invalid API key", error="Invalid API key", headers=challenge)
        return actor


class RateLimitMiddleware:
    """Per API key once authenticated (`user:<name>`), per client IP on public routes (`ip:<addr>`)."""

    def __init__(self, app: ASGIApp, per_key: RateLimiter, per_ip: RateLimiter) -> None:
        self.app, self.per_key, self.per_ip = app, per_key, per_ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        actor: Actor | None = _state(scope).get("actor")
        if actor is not None:
            wait = self.per_key.acquire(f"{actor.actor_type.value.lower()}:{actor.name}")
        else:
            client = scope.get("client")
            wait = self.per_ip.acquire(f"ip:{client[0] if client else 'unknown'}")
        if wait > 0:
            await send_error(
                send,
                scope,
                429,
                "Rate limit exceeded",
                error="Rate limit exceeded",
                headers=[(b"retry-after", retry_after_header(wait).encode())],
            )
            return
        await self.app(scope, receive, send)


AuditWriter = Callable[[Actor, str, str, dict[str, Any]], Awaitable[None]]


class AuditMiddleware:
    """Records every mutating authenticated call: actor, action, path (no query), body SHA-256, status and
    latency, and holds the response back until that row is committed.

    So a client that received a complete response knows its call is in the trail, even if the process dies
    right after; a crash before the commit leaves the client without a response, not with an unaudited
    one. (What the call changed was committed earlier, with its own domain audit row, in its own
    transaction.) If the row cannot be written, the client gets a 500 instead of the held response."""

    def __init__(self, app: ASGIApp, write: AuditWriter) -> None:
        self.app, self.write = app, write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        actor: Actor | None = _state(scope).get("actor") if scope["type"] == "http" else None
        if actor is None or scope["method"] not in MUTATING_METHODS or not is_audited(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        body = bytearray()
        replayed = False
        held: Message | None = None  # the response start, until the row is committed
        recorded = False

        async def read_body() -> None:
            # The whole body is hashed up front (BodyLimit has bounded it), so routes that never read
            # their body (404, 405, bodiless actions) are recorded with the hash of what was sent.
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    return

        async def receive_replayed() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        async def record() -> None:
            nonlocal recorded
            recorded = True
            details = {
                "method": scope["method"],
                "path": scope["path"],
                "body_hash": hashlib.sha256(body).hexdigest(),
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": _state(scope).get("request_id", ""),
            }
            try:
                await self.write(actor, f"api_{scope['method'].lower()}", scope["path"], details)
            except Exception:
                log.exception("audit.write_failed", extra={"path": scope["path"], "actor": actor.name})
                raise

        async def send_held(message: Message) -> None:
            nonlocal status, held
            if message["type"] == "http.response.start":
                status, held = message["status"], message
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not recorded:
                await record()  # raises if the row was not written: the held response is never sent
            if held is not None:
                start, held = held, None
                await send(start)
            await send(message)

        try:
            await read_body()
            await self.app(scope, receive_replayed, send_held)
        except HTTPException as exc:  # raised by `receive` (BodyLimit's 413), answered by an outer layer
            status = exc.status_code
            raise
        finally:
            if not recorded:  # no complete response from the app: record what the client will get
                await record()
