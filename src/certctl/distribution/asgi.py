"""Plain ASGI routing of `/.well-known/pki/{kind}/{issuer_id}[/{rest}]` to one handler per kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

PREFIX = "/.well-known/pki/"
MAX_REQUEST_BYTES = 64 * 1024
"""An OCSP request is a few hundred bytes; anything far larger is refused before it is read whole."""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PKIRequest:
    method: str
    """GET, HEAD or POST (HEAD is answered like GET, without a body)."""
    kind: str
    """The path segment after the prefix: `crl`, `ocsp`, `ca`."""
    issuer_id: str
    """Percent-decoded."""
    rest: str
    """Whatever follows `{issuer_id}/`, still percent-encoded (an OCSP GET request is base64 with `/` in it)."""
    query: str
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes
    client_ip: str


@dataclass(frozen=True, slots=True)
class PKIResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[PKIRequest], Awaitable[PKIResponse]]


def text_response(status: int, message: str) -> PKIResponse:
    return PKIResponse(status, (message + "\n").encode())


class DistributionApp:
    """Answers PKI distribution paths with `handlers`; anything else goes to `fallback` (404 without one)."""

    def __init__(self, handlers: Mapping[str, Handler], fallback: ASGIApp | None = None) -> None:
        self._handlers = dict(handlers)
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            if self._fallback is not None:
                await self._fallback(scope, receive, send)
            elif scope["type"] == "http":
                await _send(send, text_response(404, "not found"), head=False)
            return
        await _send(send, await self._answer(scope, receive), head=scope["method"] == "HEAD")

    async def _answer(self, scope: Scope, receive: Receive) -> PKIResponse:
        raw = scope.get("raw_path") or scope["path"].encode()
        parts = raw.decode("latin-1")[len(PREFIX) :].split("/", 2)
        if len(parts) < 2 or not parts[1]:
            return text_response(404, "not found: expected /.well-known/pki/{crl|ocsp|ca}/{issuer_id}")
        handler = self._handlers.get(parts[0])
        if handler is None:
            return text_response(404, f"not found: no {parts[0]!r} distribution point")
        method = scope["method"]
        if method not in ("GET", "HEAD", "POST"):
            return PKIResponse(405, b"method not allowed\n", headers=(("allow", "GET, HEAD, POST"),))
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        body = b""
        if method == "POST":
            read = await _read_body(receive, headers)
            if read is None:
                return text_response(413, f"request larger than {MAX_REQUEST_BYTES} bytes")
            body = read
        client = scope.get("client")
        request = PKIRequest(
            method=method,
            kind=parts[0],
            issuer_id=unquote(parts[1]),
            rest=parts[2] if len(parts) > 2 else "",
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            client_ip=client[0] if client else "",
        )
        return await handler(request)


class DistributionMiddleware(DistributionApp):
    """`DistributionApp` in front of the REST API: `app.add_middleware(DistributionMiddleware, handlers=…)`."""

    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler]) -> None:
        super().__init__(handlers, fallback=app)


async def _read_body(receive: Receive, headers: Mapping[str, str]) -> bytes | None:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: PKIResponse, *, head: bool) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode()),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})
