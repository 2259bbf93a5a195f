"""A real HTTPS certctl server (uvicorn in a thread, TLS pinned) for the REST CLI tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from certctl.app import create_app
from certctl.clock import SystemClock
from certctl.context import AppContext
from certctl.security.tls import ensure_bootstrap_certificate, server_ssl_context
from tests.conftest import API_KEYS
from tests.factories import seed_inventory


@pytest.fixture
def served(context_factory: Any, tmp_path: Path) -> Iterator[tuple[AppContext, dict[str, str]]]:
    context: AppContext = context_factory(SystemClock(), keygen_mode="server")
    seed_inventory(context)
    cert, key, _ = ensure_bootstrap_certificate(tmp_path / "tls", ["localhost"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(context),
        host="127.0.0.1",
        port=port,
        log_config=None,
        ssl_context_factory=lambda _c, _d: server_ssl_context(cert, key),
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.05)
    env = {
        "CERTCTL_SERVER_URL": f"https://localhost:{port}",
        "CERTCTL_API_KEY": API_KEYS["admin"][0],
        "CERTCTL_SERVER_CA_BUNDLE_PATH": str(cert),
        "CERTCTL_CLI_CONFIG": str(tmp_path / "none.toml"),
    }
    try:
        yield context, env
    finally:
        server.should_exit = True
        thread.join(10)
