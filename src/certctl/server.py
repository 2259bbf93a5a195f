"""`certctl server`: prepare, then serve HTTPS only (TLS 1.2+, 1.3 preferred) with uvicorn.

With `workers` > 1 the listening socket is bound here and served by that many worker processes (uvicorn's
supervisor restarts one that dies). Each is a full replica on the same database: its own pool, its own
background loops (jobs are claimed with a lease, singleton loops hold a lease row), its own rate-limit
buckets. On SQLite they share one database file and queue on its write lock.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from certctl.app import create_app
from certctl.bootstrap import ensure_bootstrap_admin_key, prepare
from certctl.config import Settings
from certctl.context import AppContext
from certctl.crl.plain_http import PlainHTTPListener, with_plain_http_listener
from certctl.distribution.handlers import distribution_handlers
from certctl.logs import configure_logging
from certctl.security.tls import ensure_bootstrap_certificate, fingerprint_sha256, server_ssl_context
from certctl.worker import build_background

log = logging.getLogger("certctl.server")


def run(settings: Settings, *, announce: bool = True, workers: int = 1) -> None:
    configure_logging(settings.log_level, settings.log_format)
    if settings.auth_disabled_warning:
        log.warning("auth.disabled", extra={"detail": settings.auth_disabled_warning})
    if settings.tls_pair_configured:
        if settings.server_tls_cert_path is None or settings.server_tls_key_path is None:
            from certctl.errors import ConfigurationError

            raise ConfigurationError(
                "set both CERTCTL_SERVER_TLS_CERT_PATH and CERTCTL_SERVER_TLS_KEY_PATH, or neither"
            )
        cert_path, key_path, created = settings.server_tls_cert_path, settings.server_tls_key_path, False
    else:
        cert_path, key_path, created = ensure_bootstrap_certificate(settings.data_dir, [settings.server_host])
    server_ssl_context(cert_path, key_path)  # refuses to start on an unusable pair, before any I/O

    context = prepare(settings)
    admin_key = ensure_bootstrap_admin_key(context)
    if settings.demo_seed:
        from certctl.demo import load_demo

        load_demo(context)

    host = settings.server_host
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1") else host  # noqa: S104
    banner: str | None = None
    if announce:
        lines = [
            f"certctl is listening on https://{shown_host}:{settings.server_port}",
            f"  database: {_describe_db(settings.sqlalchemy_url)}",
            f"  TLS certificate: {cert_path}{' (self-signed, created now)' if created else ''}",
            f"  SHA-256 fingerprint: {fingerprint_sha256(cert_path)}",
        ]
        if settings.pki_http_port:
            lines.append(f"  CRL/OCSP/CA certificates over plain HTTP: http://{shown_host}:{settings.pki_http_port}")
        if admin_key:
            lines.append(f"  admin API key: {admin_key}")
            lines.append(f"    (kept in {settings.data_dir / 'bootstrap-admin-key'}; delete that file once saved)")
        lines.append(
            f"  try: curl -k -H 'Authorization: Bearer <key>' https://{shown_host}:{settings.server_port}"
            "/api/v1/auth/check"
        )
        banner = "\n".join(lines)

    options: dict[str, Any] = {
        "host": host,
        "port": settings.server_port,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": 60,
        "server_header": False,
        "proxy_headers": False,
        # uvicorn's own context cannot set a TLS floor; ours does. A partial, so worker processes get it too.
        "ssl_context_factory": functools.partial(_ssl_context, cert_path, key_path),
    }
    if workers > 1:
        context.close()  # prepared; every worker builds its own context and pool
        config = uvicorn.Config(functools.partial(_worker_app, settings), factory=True, workers=workers, **options)
        _AnnouncingSupervisor(config, [config.bind_socket()], banner).run()
        return
    app = _with_pki_listener(
        create_app(context, build_background(context) if settings.scheduler_enabled else None), context
    )
    try:
        _AnnouncingServer(uvicorn.Config(app, **options), banner).run()
    finally:
        context.close()


def _ssl_context(cert_path: Path, key_path: Path, _config: uvicorn.Config, _default: ssl.SSLContext) -> ssl.SSLContext:
    return server_ssl_context(cert_path, key_path)


def _worker_app(settings: Settings) -> ASGIApp:
    """The app of one worker process (runs there, after spawn): the database is already migrated and
    seeded by the parent, so this only connects and checks the encryption key."""
    configure_logging(settings.log_level, settings.log_format)
    context = prepare(settings, run_migrations=False, seed_issuers=False)
    return _with_pki_listener(
        create_app(context, build_background(context) if settings.scheduler_enabled else None), context
    )


def _with_pki_listener(app: ASGIApp, context: AppContext) -> ASGIApp:
    """With CERTCTL_PKI_HTTP_PORT, each server process also serves /.well-known/pki/ over plain HTTP
    (certctl.crl.plain_http; workers share the port with SO_REUSEPORT)."""
    settings = context.settings
    if not settings.pki_http_port:
        return app
    listener = PlainHTTPListener(distribution_handlers(context), settings.server_host, settings.pki_http_port)
    return with_plain_http_listener(app, listener)


class _AnnouncingSupervisor(Multiprocess):
    """uvicorn's worker supervisor. The socket is bound and listening before any worker starts (the kernel
    queues connections until one accepts), so the banner is true once this runs; a worker that cannot
    start makes the supervisor exit with an error."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], banner: str | None) -> None:
        super().__init__(config, sockets)
        self._banner = banner

    def run(self) -> None:
        if self._banner:
            print(self._banner, flush=True)
        super().run()


class _AnnouncingServer(uvicorn.Server):
    """Prints the banner once the socket is bound: "is listening" must not appear if the bind fails
    (uvicorn then logs the error and exits with status 1)."""

    def __init__(self, config: uvicorn.Config, banner: str | None) -> None:
        super().__init__(config)
        self._banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._banner:
            print(self._banner, flush=True)


def _describe_db(url: str) -> str:
    if url.startswith("sqlite"):
        return f"SQLite {url.removeprefix('sqlite:///')}"
    from sqlalchemy.engine import make_url

    return f"PostgreSQL {make_url(url).render_as_string(hide_password=True)}"
