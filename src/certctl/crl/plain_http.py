"""The optional plain-HTTP distribution point (`CERTCTL_PKI_HTTP_PORT`, issue 6 item 6).

Relying parties fetch CRLs, OCSP answers and CA certificates over plain HTTP (RFC 5280 §4.2.1.13 and
RFC 6960 practice: checking revocation must not depend on a TLS certificate that is itself being checked),
so `certctl server` can listen on a second, unencrypted port that serves only `/.well-known/pki/...`
(everything else: 404).

The listener lives inside each server process, started and stopped by the API app's lifespan
(`with_plain_http_listener`), so it shares the process's context (the in-memory CRL copy, the OCSP cache)
and works the same with `--workers N`: every worker binds the port with SO_REUSEPORT and the kernel spreads
connections over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Mapping

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certctl.distribution.asgi import DistributionApp, Handler

START_TIMEOUT_SECONDS = 10.0


class _CompanionServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the main server: its owner stops it (`should_exit`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class PlainHTTPListener:
    """Serves `handlers` over plain HTTP on host:port while started."""

    def __init__(self, handlers: Mapping[str, Handler], host: str, port: int, *, reuse_port: bool = True) -> None:
        self.host, self.port, self._reuse_port = host, port, reuse_port
        config = uvicorn.Config(
            DistributionApp(handlers),
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=60,
        )
        self._server = _CompanionServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; raises OSError when the port cannot be bound."""
        sock = self._bind()
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raises why it stopped
                raise OSError(f"plain-HTTP listener on {self.host}:{self.port} stopped during start-up")
            if loop.time() > give_up:
                raise OSError(f"plain-HTTP listener on {self.host}:{self.port} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        task, self._task = self._task, None
        await task

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        return sock


def with_plain_http_listener(app: ASGIApp, listener: PlainHTTPListener) -> ASGIApp:
    """`app`, plus `listener` running from before the app's start-up until before its shutdown. A port that
    cannot be bound fails the start-up (uvicorn exits with an error) before the app starts anything."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        startup = await receive()
        try:
            await listener.start()
        except OSError as exc:
            where = f"{listener.host}:{listener.port}"
            await send({"type": "lifespan.startup.failed", "message": f"plain-HTTP listener on {where}: {exc}"})
            return
        replayed = False

        async def lifespan_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return startup
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await listener.stop()  # stop answering before the app releases its database
            return message

        try:
            await app(scope, lifespan_receive, send)
        finally:
            await listener.stop()

    return wrapped
