"""Fixtures for the notification tests: the real HTTP and SMTP peers of `peers.py`.

def test_x(http_sink: HttpSink) -> None:
    http_sink.script([503, 200]); ...; assert http_sink.requests[-1].json["type"] == "event"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.notifications.peers import (
    HttpSink,
    SilentTcpServer,
    SmtpMode,
    SmtpSink,
    TlsMaterial,
    make_tls_material,
    refused_url,
)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A self-signed certificate for localhost and 127.0.0.1, with server and trusting client contexts."""
    directory: Path = tmp_path_factory.mktemp("peer-tls")
    return make_tls_material(("localhost", "127.0.0.1"), directory)


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A plain-HTTP sink on 127.0.0.1; answers 200 with an empty body until told otherwise."""
    sink = HttpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def https_sink(tls_material: TlsMaterial) -> Iterator[HttpSink]:
    """The same sink over TLS, with `tls_material`'s certificate (trust `tls_material.client_context()`)."""
    sink = HttpSink(tls=tls_material).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def refused_http_url() -> str:
    """An http:// URL on a loopback port nothing listens on."""
    return refused_url()


@pytest.fixture
def silent_server() -> Iterator[SilentTcpServer]:
    """A TCP server that accepts and never answers (greeting and handshake timeouts)."""
    server = SilentTcpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server (no STARTTLS, no AUTH) on 127.0.0.1 that accepts every message."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


SmtpSinkFactory = Callable[..., SmtpSink]


@pytest.fixture
def smtp_sink_factory(tls_material: TlsMaterial) -> Iterator[SmtpSinkFactory]:
    """Starts SMTP sinks with other settings: make(mode="starttls"|"implicit", auth=(u, p), ...)."""
    started: list[SmtpSink] = []

    def make(
        *,
        mode: SmtpMode = "plain",
        auth: tuple[str, str] | None = None,
        require_starttls: bool = False,
        auth_require_tls: bool = False,
    ) -> SmtpSink:
        sink = SmtpSink(
            mode=mode,
            tls=tls_material if mode != "plain" else None,
            auth=auth,
            require_starttls=require_starttls,
            auth_require_tls=auth_require_tls,
        ).start()
        started.append(sink)
        return sink

    try:
        yield make
    finally:
        for sink in started:
            sink.stop()


@pytest.fixture
def smtp_starttls_sink(smtp_sink_factory: SmtpSinkFactory) -> SmtpSink:
    """An SMTP server offering STARTTLS with `tls_material`'s certificate."""
    return smtp_sink_factory(mode="starttls")


@pytest.fixture
def smtps_sink(smtp_sink_factory: SmtpSinkFactory) -> SmtpSink:
    """An SMTPS server (implicit TLS) with `tls_material`'s certificate."""
    return smtp_sink_factory(mode="implicit")
