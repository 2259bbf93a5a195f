"""Real local peers for the notification tests: an HTTP sink with fault injection and an SMTP sink.

Both listen on 127.0.0.1 on a random port, run in background threads, record what they receive and
can be told how to answer, per test and per request. They depend only on the standard library,
aiosmtpd and cryptography, never on certctl, so the notifications core and the channels can share them.

    sink = HttpSink().start()
    sink.script([503, 503, 200])      # the next three requests, then the default again
    sink.flaky(0.3, seed=7)           # 30 % of requests answer 503, reproducibly
    sink.hang(5)                      # answer only after 5 s (cut short when the sink stops)
    sink.requests[0].json             # what arrived
    sink.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import json
import random
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def refused_url(path: str = "/") -> str:
    """An http:// URL on a loopback port nothing listens on: a connection attempt is refused."""
    return f"http://{LOOPBACK}:{free_port()}{path}"


# --------------------------------------------------------------------------------------------------
# TLS material made at test time
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """A self-signed certificate (PEM) for `hostnames`, with server and client contexts built from it."""

    cert_pem: bytes
    key_pem: bytes
    hostnames: tuple[str, ...]
    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "key.pem"

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this certificate."""
        return ssl.create_default_context(cadata=self.cert_pem.decode("ascii"))


def make_tls_material(hostnames: Sequence[str] = ("localhost", LOOPBACK), directory: Path | None = None) -> TlsMaterial:
    """A self-signed P-256 certificate valid for `hostnames` (DNS names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    sans: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory = directory or Path(tempfile.mkdtemp(prefix="certctl-peer-tls-"))
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(key_pem)
    return TlsMaterial(cert_pem=cert_pem, key_pem=key_pem, hostnames=tuple(hostnames), directory=directory)


# --------------------------------------------------------------------------------------------------
# HTTP sink
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """How the sink answers one request."""

    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    hang_seconds: float = 0.0  # wait this long before answering; cut short when the sink stops
    drop: bool = False  # close the connection without any answer

    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


ReplySpec = Reply | int


def _as_reply(spec: ReplySpec) -> Reply:
    return spec if isinstance(spec, Reply) else Reply(status=spec)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the sink received it."""

    method: str
    path: str
    headers: Mapping[str, str]  # keys lower-cased; repeated headers joined with ", "
    raw_headers: tuple[tuple[str, str], ...]
    body: bytes
    client_address: tuple[str, int]
    sni: str | None  # TLS server name the client sent (HTTPS sinks only)
    answered_status: int | None  # None when the sink dropped the connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.body)


class _SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 1024  # the benchmark opens many connections at once
    allow_reuse_address = True
    sink: HttpSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are part of the tests; stay quiet about broken pipes.
        pass


_REASONS = {status.value: status.phrase for status in HTTPStatus}


class _SinkHandler(socketserver.StreamRequestHandler):
    """A lean HTTP/1.1 server loop (keep-alive, Content-Length or chunked bodies).

    Written by hand rather than on http.server: its e-mail-based header parser costs more per request
    than the client under test, and the benchmark pushes 10,000 requests through here.
    """

    server: _SinkServer
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.sink._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, add=False)

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except (OSError, ValueError, ssl.SSLError):
            pass  # client went away, timed out or sent garbage

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _one_request(self) -> bool:
        line = self.rfile.readline(65537)
        if not line:
            return False
        method, path, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        raw: list[tuple[str, str]] = []
        while True:
            header_line = self.rfile.readline(65537)
            if header_line in (b"\r\n", b"\n", b""):
                break
            name, _, value = header_line.decode("latin-1").partition(":")
            raw.append((name.strip(), value.strip()))
        joined: dict[str, str] = {}
        for k, v in raw:
            key = k.lower()
            joined[key] = f"{joined[key]}, {v}" if key in joined else v
        body = self._read_body(joined)
        sink = self.server.sink
        reply = sink._next_reply()
        sink._record(
            RecordedRequest(
                method=method,
                path=path,
                headers=joined,
                raw_headers=tuple(raw),
                body=body,
                client_address=(str(self.client_address[0]), int(self.client_address[1])),
                sni=sink._sni_for(self.connection),
                answered_status=None if reply.drop else reply.status,
            )
        )
        if reply.hang_seconds > 0 and sink._stopping.wait(reply.hang_seconds):
            return False
        if reply.drop:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return False
        keep_alive = version == "HTTP/1.1" and joined.get("connection", "").lower() != "close"
        payload = reply.body_bytes()
        head = [
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Unknown')}",
            f"Content-Type: {reply.headers.get('Content-Type', 'text/plain; charset=utf-8')}",
            f"Content-Length: {len(payload)}",
        ]
        head += [f"{k}: {v}" for k, v in reply.headers.items() if k.lower() not in ("content-type", "content-length")]
        if not keep_alive:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.connection.sendall(data if method == "HEAD" else data + payload)
        return keep_alive


class HttpSink:
    """An HTTP(S) server on 127.0.0.1 that records every request and answers as it is told.

    Order of decision for each request: a handler set with `on_request`, else the next scripted reply,
    else a flaky 503 (when `flaky` is on and the seeded draw says so), else the default reply.
    Thread-safe: any number of concurrent connections, keep-alive supported.
    """

    def __init__(self, *, tls: TlsMaterial | None = None, host: str = LOOPBACK) -> None:
        self._tls = tls
        self._host = host
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._default = Reply(status=200)
        self._script: deque[Reply] = deque()
        self._flaky: tuple[float, random.Random] | None = None
        self._flaky_status = 503
        self._handler: Callable[[], Reply] | None = None
        self._connections: set[socket.socket] = set()
        self._sni: dict[int, str | None] = {}
        self._stopping = threading.Event()
        self._server: _SinkServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # lifecycle ----------------------------------------------------------------------------------

    def start(self) -> HttpSink:
        server = _SinkServer((self._host, 0), _SinkHandler)
        server.sink = self
        if self._tls is not None:
            ctx = self._tls.server_context()
            ctx.sni_callback = self._on_sni
            # The handshake runs lazily in the connection's own thread, so a silent client cannot
            # block the accept loop.
            server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, end hanging replies at once and close every open connection."""
        self._stopping.set()
        self._close_listener()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        """Close every open (keep-alive) connection from the server side; keep listening."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def refuse(self) -> None:
        """Close the listening socket: from now on connections to `url` are refused."""
        self._close_listener()

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HttpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:40123."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self._host}:{self.port}"

    def url_for(self, path: str = "/", *, host: str | None = None) -> str:
        """A URL on this sink; `host` swaps the host part (e.g. "localhost" to exercise DNS)."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host or self._host}:{self.port}{path}"

    @staticmethod
    def refused_url(path: str = "/") -> str:
        """A URL on a loopback port nothing listens on."""
        return refused_url(path)

    # behaviour ----------------------------------------------------------------------------------

    def respond(self, status: int = 200, body: bytes | str = b"", headers: Mapping[str, str] | None = None) -> None:
        """Answer every request (after any scripted replies) with this status and body."""
        with self._lock:
            self._default = Reply(status=status, body=body, headers=dict(headers or {}))
            self._flaky = None

    def script(self, replies: Iterable[ReplySpec]) -> None:
        """Answer the next requests in this order (ints are statuses), then fall back to the default."""
        with self._lock:
            self._script.extend(_as_reply(r) for r in replies)

    def hang(self, seconds: float = 60.0, *, status: int = 200) -> None:
        """Answer every request only after `seconds` (the wait ends early when the sink stops)."""
        with self._lock:
            self._default = Reply(status=status, hang_seconds=seconds)
            self._flaky = None

    def drop(self) -> None:
        """Close every connection without answering."""
        with self._lock:
            self._default = Reply(drop=True)
            self._flaky = None

    def flaky(self, rate: float, seed: int = 0, *, status: int = 503) -> None:
        """Fail a `rate` share of requests with `status` (503), drawn from random.Random(seed)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._flaky = (rate, random.Random(seed))
            self._flaky_status = status

    def on_request(self, handler: Callable[[], Reply] | None) -> None:
        """Decide every reply with `handler` (None restores the normal behaviour)."""
        with self._lock:
            self._handler = handler

    def reset(self) -> None:
        """Forget recorded requests and restore the default behaviour (200, empty body)."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._default = Reply(status=200)
            self._flaky = None
            self._handler = None

    # recorded traffic ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived (TimeoutError otherwise); return them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {count} requests, got {len(self._requests)}")
                self._arrived.wait(remaining)
            return list(self._requests)

    # internals used by the handler --------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._lock:
            handler = self._handler
            if handler is None:
                if self._script:
                    return self._script.popleft()
                if self._flaky is not None:
                    rate, rng = self._flaky
                    if rng.random() < rate:
                        return Reply(status=self._flaky_status, body="flaky sink: injected failure")
                return self._default
        return handler()  # outside the lock: a handler may take its time

    def _record(self, request: RecordedRequest) -> None:
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
                self._sni.pop(id(conn), None)

    def _on_sni(self, sslsock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext) -> None:
        with self._lock:
            self._sni[id(sslsock)] = server_name

    def _sni_for(self, conn: socket.socket) -> str | None:
        with self._lock:
            return self._sni.get(id(conn))


# --------------------------------------------------------------------------------------------------
# SMTP sink
# --------------------------------------------------------------------------------------------------

SmtpMode = Literal["plain", "starttls", "implicit"]
HangStage = Literal["ehlo", "mail", "data"]


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    authenticated_as: str | None


def _is_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def _maybe_hang(self, stage: HangStage) -> None:
        hang = self.sink._hang
        if hang is not None and hang[1] == stage:
            await asyncio.sleep(hang[0])  # cancelled when the controller stops

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        await self._maybe_hang("ehlo")
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        await self._maybe_hang("mail")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.sink._rejected_recipients.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._maybe_hang("data")
        failure = self.sink._take_failure()
        if failure is not None:
            return failure
        raw = envelope.original_content or b""
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8")
        # Parsed with "\n" line ends, as Python code expects; `raw` keeps the CRLF wire form.
        parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode("utf-8") if isinstance(auth, LoginPassword) else None
        self.sink._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
                message=parsed,
                tls=session.ssl is not None or _is_tls(server),
                authenticated_as=login,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller bound to a random port (port 0), which it does not support by itself."""

    def factory(self) -> SMTP:
        # AUTH over plain text is deliberate here (tests of the "none" TLS mode log in too).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            smtp: SMTP = super().factory()  # type: ignore[no-untyped-call]
        return smtp

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records messages and can fail, hang or demand AUTH/TLS.

    mode "plain" offers no STARTTLS; "starttls" offers it (and, with `require_starttls`, refuses mail
    without it); "implicit" speaks TLS from the first byte (SMTPS). `auth=(user, password)` advertises
    AUTH PLAIN/LOGIN and requires it; over plain text too (so tests of the "none" mode can log in) unless
    `auth_require_tls`, where AUTH before STARTTLS is refused.
    """

    def __init__(
        self,
        *,
        mode: SmtpMode = "plain",
        tls: TlsMaterial | None = None,
        auth: tuple[str, str] | None = None,
        require_starttls: bool = False,
        auth_require_tls: bool = False,
        hostname: str = LOOPBACK,
    ) -> None:
        if mode != "plain" and tls is None:
            tls = make_tls_material()
        self.mode: SmtpMode = mode
        self.tls = tls
        self.host = hostname
        self.port = 0
        self._auth = auth
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._messages: list[ReceivedMail] = []
        self._auth_attempts: list[tuple[str, str, bool]] = []
        self._fail_next = 0
        self._fail_always = False
        self._fail_reply = "451 4.3.0 temporary failure"
        self._hang: tuple[float, HangStage] | None = None
        self._rejected_recipients: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ready_timeout": 10.0}
        if mode == "starttls":
            assert tls is not None
            kwargs["tls_context"] = tls.server_context()
            kwargs["require_starttls"] = require_starttls
        elif mode == "implicit":
            assert tls is not None
            kwargs["ssl_context"] = tls.server_context()
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = auth_require_tls
        self._controller = _Controller(_SmtpHandler(self), hostname=hostname, port=0, **kwargs)

    def start(self) -> SmtpSink:
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        self._controller.stop(no_assert=True)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # behaviour ----------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, reply: str = "451 4.3.0 temporary failure") -> None:
        """Answer DATA of the next `count` messages with `reply` (a 4xx/5xx line)."""
        with self._lock:
            self._fail_next = count
            self._fail_reply = reply

    def fail_always(self, reply: str = "451 4.3.0 temporary failure") -> None:
        with self._lock:
            self._fail_always = True
            self._fail_reply = reply

    def reject_recipient(self, address: str, reply: str = "550 5.1.1 mailbox unavailable") -> None:
        """Answer RCPT TO:<address> with `reply`."""
        with self._lock:
            self._rejected_recipients[address] = reply

    def hang(self, seconds: float = 60.0, *, at: HangStage = "data") -> None:
        """Stall the session at EHLO, MAIL or DATA for `seconds` (ends when the sink stops)."""
        with self._lock:
            self._hang = (seconds, at)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._auth_attempts.clear()
            self._fail_next = 0
            self._fail_always = False
            self._hang = None
            self._rejected_recipients.clear()

    # recorded traffic ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    @property
    def auth_attempts(self) -> list[tuple[str, str, bool]]:
        """(mechanism, login, succeeded) for every AUTH the sink saw."""
        with self._lock:
            return list(self._auth_attempts)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"expected {count} messages, got {len(self._messages)}")
                self._arrived.wait(remaining)
            return list(self._messages)

    # internals ----------------------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self._auth is not None
        ok = False
        login = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            ok = (login, password) == self._auth
        with self._lock:
            self._auth_attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _take_failure(self) -> str | None:
        with self._lock:
            if self._fail_always:
                return self._fail_reply
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_reply
            return None

    def _record(self, mail: ReceivedMail) -> None:
        with self._arrived:
            self._messages.append(mail)
            self._arrived.notify_all()


class SilentTcpServer:
    """Accepts TCP connections and never says a word: for greeting / TLS-handshake timeouts."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.host = LOOPBACK
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> SilentTcpServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(conn)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._accepted:
            conn.close()
        self._sock.close()
