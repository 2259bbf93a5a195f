"""The one outbound HTTP client every HTTP channel shares: pooled, thread-safe, SSRF-guarded, with deadlines.

Each POST passes the URL check again (§8.7 layer 1); every new connection re-resolves the host, refuses
reserved addresses and connects to the checked IP itself (layer 2, `resolve_for_dial`), while the Host
header, TLS SNI and certificate verification keep the URL's host name. Connections are kept alive and
pooled per (scheme, host, port), so one TLS session verified for a name is never reused for another.
A whole-request deadline bounds connect, upload, headers and body together (Go's `http.Client.Timeout`):
every socket operation gets only what is left of it, so a server that trickles bytes cannot hold a
delivery thread (and its claim) past it. Redirects are never followed; response bodies are read up to
`MAX_RESPONSE_BYTES`.

Built on `http.client` rather than httpx: the notification benchmark pushes 10,000 webhook deliveries
through one process, and httpx costs about 2.5 times as much CPU per request. `certctl.security.ssrf`
keeps an httpx transport with the same guard for code that wants httpx.
"""

from __future__ import annotations

import base64
import errno
import http.client
import io
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from certctl.notifications.channels.base import DeliveryFailed, Receipt
from certctl.security.ssrf import DialRefused, Resolver, UnsafeURL, check_url, resolve_for_dial, system_resolver

MAX_RESPONSE_BYTES = 64 * 1024  # read at most this much of a response; channels only quote it in errors
ERROR_BODY_CHARS = 2048  # a response body quoted in an error is cut here
USER_AGENT = "certctl-notifier/1.0"
KEEPALIVE_EXPIRY_SECONDS = 5.0  # an idle connection older than this is closed rather than reused
MAX_IDLE_PER_ORIGIN = 64


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Seconds allowed to connect (TCP + TLS) and for the whole request, response body included."""

    connect_seconds: float = 10.0
    total_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.connect_seconds <= 0 or self.total_seconds <= 0:
            raise ValueError("timeouts must be positive")


CHAT_TIMEOUTS = HttpTimeouts(connect_seconds=10.0, total_seconds=10.0)  # Slack, Teams, PagerDuty, OpsGenie (§8.2-8.5)
WEBHOOK_TIMEOUTS = HttpTimeouts(connect_seconds=10.0, total_seconds=30.0)  # §8.7


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status_code: int
    text: str  # the first MAX_RESPONSE_BYTES of the body, decoded leniently


class OutboundRefused(Exception):
    """A URL check or the dial-time guard refused the request before any byte reached the target."""

    def __init__(self, reason: str, *, at_dial: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at_dial = at_dial


class OutboundFailed(Exception):
    """The request failed in transport (refused, timed out, TLS, reset); str() is a short reason."""


# --------------------------------------------------------------------------------------------------
# Deadline-bound sockets and pinned connections
# --------------------------------------------------------------------------------------------------


class _DeadlineExceeded(TimeoutError):
    pass


class _DeadlineSocket:
    """The parts of a socket http.client uses, each operation limited to what is left of `deadline`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + 3600.0

    def arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded("request deadline exceeded")
        self.sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        self.arm()
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def readable_while_idle(self) -> bool:
        """True when an idle connection has data or EOF waiting: the server closed it or misbehaved."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = select.poll()  # not select(): it fails on descriptors above FD_SETSIZE in a busy server
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        self.sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, owner: _DeadlineSocket) -> None:
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        self._owner.arm()
        return self._owner.sock.recv_into(buffer)


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to addresses the guard already checked; never resolves a name itself."""

    auto_open = 0  # never reconnect behind the pool's back

    def __init__(
        self, host: str, port: int, addresses: list[str], *, timeout: float, tls: ssl.SSLContext | None
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self._tls = tls
        self.idle_since = 0.0

    @property
    def deadline_socket(self) -> _DeadlineSocket:
        assert isinstance(self.sock, _DeadlineSocket)
        return self.sock

    def connect(self) -> None:
        sock: socket.socket | None = None
        failure: OSError | None = None
        for address in self._addresses:  # only checked addresses; the next one when one cannot connect
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
                break
            except OSError as exc:
                failure = exc
        if sock is None:
            assert failure is not None
            raise failure
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock)


# --------------------------------------------------------------------------------------------------
# The shared client
# --------------------------------------------------------------------------------------------------

_Origin = tuple[str, str, int]


class OutboundHttp:
    """One pooled client for every HTTP channel; create once, share across threads, `close()` at exit."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        """`ssl_context` replaces the system trust store (tests with a self-signed certificate)."""
        self.allow_loopback = allow_loopback
        self._resolver = resolver
        self._tls = ssl_context or ssl.create_default_context()
        self._lock = threading.Lock()
        self._idle: dict[_Origin, list[_PinnedConnection]] = {}
        self._closed = False

    def check(self, url: str) -> None:
        """Layer 1 of §8.7; raises UnsafeURL."""
        check_url(url, allow_loopback=self.allow_loopback, resolver=self._resolver)

    def post(self, url: str, *, content: bytes, headers: Mapping[str, str], timeouts: HttpTimeouts) -> HttpAnswer:
        """POST `content` once and return the status and (capped) body, whatever the status.

        Raises OutboundRefused when the URL or the address it resolves to is not allowed, and
        OutboundFailed for transport failures, including `timeouts` running out.
        """
        try:
            self.check(url)
        except UnsafeURL as exc:
            raise OutboundRefused(str(exc), at_dial=False) from exc
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not target.isascii():  # http.client sends the target as ASCII; escape the rest as UTF-8
            target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
        request_headers = dict(headers)
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            request_headers.setdefault("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii"))
        deadline = time.monotonic() + timeouts.total_seconds
        conn = self._acquire((scheme, host, port), deadline, timeouts)
        reusable = False
        try:
            sock = conn.deadline_socket
            sock.deadline = deadline
            conn.request("POST", target, body=content, headers=request_headers)
            response = conn.getresponse()
            body = response.read(MAX_RESPONSE_BYTES + 1)
            reusable = response.isclosed() and not response.will_close and len(body) <= MAX_RESPONSE_BYTES
            return HttpAnswer(status_code=response.status, text=body[:MAX_RESPONSE_BYTES].decode("utf-8", "replace"))
        except TimeoutError as exc:
            raise OutboundFailed(f"timed out after {timeouts.total_seconds:g}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise OutboundFailed(_describe(exc)) from exc
        finally:
            if reusable:
                self._release((scheme, host, port), conn)
            else:
                conn.close()

    def close(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    # pool -----------------------------------------------------------------------------------------

    def _acquire(self, origin: _Origin, deadline: float, timeouts: HttpTimeouts) -> _PinnedConnection:
        while True:
            with self._lock:
                stack = self._idle.get(origin)
                conn = stack.pop() if stack else None
            if conn is None:
                break
            stale = time.monotonic() - conn.idle_since > KEEPALIVE_EXPIRY_SECONDS
            if stale or conn.deadline_socket.readable_while_idle():
                conn.close()
                continue
            return conn
        scheme, host, port = origin
        try:
            addresses = resolve_for_dial(host, port, allow_loopback=self.allow_loopback, resolver=self._resolver)
        except DialRefused as exc:
            raise OutboundRefused(str(exc), at_dial=True) from exc
        except OSError as exc:
            raise OutboundFailed(str(exc)) from exc
        remaining = deadline - time.monotonic()
        conn = _PinnedConnection(
            host,
            port,
            addresses,
            timeout=max(0.001, min(timeouts.connect_seconds, remaining)),
            tls=self._tls if scheme == "https" else None,
        )
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise OutboundFailed(f"connect timed out after {timeouts.connect_seconds:g}s") from exc
        except OSError as exc:
            conn.close()
            raise OutboundFailed(_describe(exc)) from exc
        return conn

    def _release(self, origin: _Origin, conn: _PinnedConnection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            if not self._closed:
                stack = self._idle.setdefault(origin, [])
                if len(stack) < MAX_IDLE_PER_ORIGIN:
                    stack.append(conn)
                    return
        conn.close()


def _describe(exc: BaseException) -> str:
    """A short transport reason: "connect: connection refused", "tls: certificate verify failed: …"."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid response: {exc!r}"
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return "connect: connection refused"
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    return str(exc) or type(exc).__name__


def error_excerpt(text: str, limit: int = ERROR_BODY_CHARS) -> str:
    """A response body fit to quote in `last_error`: trimmed, cut at `limit` characters with a marker."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def send_json(
    http: OutboundHttp,
    url: str,
    body: bytes,
    *,
    label: str,
    accepted: Callable[[int], bool],
    rejected: Callable[[int, str], str],
    timeouts: HttpTimeouts,
    headers: Mapping[str, str] | None = None,
) -> Receipt:
    """POST a JSON body once; a Receipt on an accepted status, else DeliveryFailed.

    `label` prefixes transport errors ("slack: request failed: connect: connection refused");
    `rejected(status, body_excerpt)` words the error for a status that is not accepted.
    """
    try:
        answer = http.post(url, content=body, headers=headers or json_headers(), timeouts=timeouts)
    except OutboundRefused as exc:
        if exc.at_dial:
            raise DeliveryFailed(f"{label}: request failed: {exc.reason}") from exc
        raise DeliveryFailed(f"{label} url rejected: {exc.reason}") from exc
    except OutboundFailed as exc:
        raise DeliveryFailed(f"{label}: request failed: {exc}") from exc
    if not accepted(answer.status_code):
        raise DeliveryFailed(rejected(answer.status_code, error_excerpt(answer.text)), http_status=answer.status_code)
    return Receipt(http_status=answer.status_code)


def json_body(payload: object) -> bytes:
    """Compact UTF-8 JSON, the exact bytes that are sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Content-Type and User-Agent, then `extra` (which replaces either, whatever its case)."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    for name, value in (extra or {}).items():
        for default in [k for k in headers if k.lower() == name.lower()]:
            del headers[default]
        headers[name] = value
    return headers
