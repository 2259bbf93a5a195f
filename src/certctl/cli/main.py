"""`certctl` entry point. Server-side commands read the same CERTCTL_* settings as the server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from certctl import __version__
from certctl.agent.main import app as agent_app
from certctl.cli.agent_groups import app as agent_groups_app
from certctl.cli.agents import app as agents_app
from certctl.cli.certs import app as certs_app
from certctl.cli.issuers import app as issuers_app
from certctl.cli.jobs import app as jobs_app
from certctl.cli.notifications import app as notifications_app
from certctl.config import Settings, load_settings
from certctl.errors import CertctlError, ConfigurationError
from certctl.security.roles import Role

if TYPE_CHECKING:
    from certctl.context import AppContext

app = typer.Typer(
    help="certctl: TLS certificate lifecycle platform.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys stored in the database (only their hashes).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")
app.add_typer(certs_app, name="certs")
app.add_typer(jobs_app, name="jobs")
app.add_typer(issuers_app, name="issuers")
app.add_typer(agents_app, name="agents")
app.add_typer(agent_groups_app, name="agent-groups")
app.add_typer(notifications_app, name="notifications")
app.add_typer(agent_app, name="agent")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"certctl: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def server(
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="processes serving the API, each a full replica on the same database")
    ] = 1,
) -> None:
    """Run the HTTPS control plane (migrates the database first)."""
    from certctl.server import run

    try:
        run(_settings(), workers=workers)
    except CertctlError as exc:
        _fail(str(exc))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from certctl.db import migrate
    from certctl.db.engine import make_engine

    engine = make_engine(_settings().sqlalchemy_url)
    migrate.upgrade(engine, revision)
    typer.echo(f"database at revision {migrate.current_revision(engine)}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="revision to go back to, or 'base'")]) -> None:
    """Revert migrations down to REVISION."""
    from certctl.db import migrate
    from certctl.db.engine import make_engine

    engine = make_engine(_settings().sqlalchemy_url)
    migrate.downgrade(engine, revision)
    typer.echo(f"database at revision {migrate.current_revision(engine) or 'base'}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the latest one this release knows."""
    from certctl.db import migrate
    from certctl.db.engine import make_engine

    engine = make_engine(_settings().sqlalchemy_url)
    typer.echo(f"current: {migrate.current_revision(engine) or 'base'}\nhead: {migrate.head_revision(engine)}")


@app.command()
def worker() -> None:
    """Run only the background loops (issuance processor, renewal check, retries) against the database."""
    import signal
    import threading

    from certctl.logs import configure_logging
    from certctl.worker import build_background

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with _context() as context:
        background = build_background(context)
        background.scheduler.start()
        typer.echo(
            f"certctl worker {background.scheduler.holder} running loops: {', '.join(background.scheduler.loop_names)}",
            err=True,
        )
        stop.wait()
        still_running = background.scheduler.stop(30)
        if still_running:
            typer.echo(f"stopped with loops still running: {', '.join(still_running)}", err=True)


@app.command()
def demo() -> None:
    """Load the demo inventory (idempotent: running it again adds nothing)."""
    from certctl.demo import load_demo

    with _context() as context:
        summary = load_demo(context)
    typer.echo(f"demo data loaded: {summary}")


@contextmanager
def _context() -> Iterator[AppContext]:
    """The prepared context for one command; its connections are closed when the command ends."""
    from certctl.bootstrap import prepare

    try:
        context = prepare(_settings())
    except CertctlError as exc:
        _fail(str(exc))
    try:
        yield context
    finally:
        context.close()


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option("--name", help="key name: the actor in the audit trail")],
    admin: Annotated[bool, typer.Option("--admin", help="shorthand for --role admin")] = False,
    role: Annotated[Role, typer.Option("--role", help="admin, operator, viewer or auditor")] = Role.OPERATOR,
) -> None:
    """Create a key and print it once; only its SHA-256 hash is stored."""
    with _context() as context:
        try:
            created = context.api_keys.create(name, Role.ADMIN if admin else role)
        except CertctlError as exc:
            _fail(str(exc))
    typer.echo(created.plaintext)
    typer.echo(f"created API key {name!r} (role {created.key.role.value}); it is shown only this once", err=True)


@apikey_app.command("list")
def apikey_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """List keys (never their values)."""
    with _context() as context:
        keys, env_keys = context.api_keys.list(), context.api_keys.env_keys
    rows = [
        {
            "name": k.name,
            "role": k.role.value,
            "source": "database",
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in keys
    ] + [
        {"name": e.name, "role": e.role.value, "source": "environment", "created_at": None, "revoked_at": None}
        for e in env_keys
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(f"{row['name']:<32} {row['role']:<9} {row['source']:<12} {state}")


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="key name")]) -> None:
    """Revoke a database key: it stops working at once."""
    with _context() as context:
        try:
            context.api_keys.revoke(name)
        except CertctlError as exc:
            _fail(str(exc))
    typer.echo(f"revoked API key {name!r}")


def main() -> None:  # pragma: no cover - console entry for python -m
    app(prog_name="certctl")
    sys.exit(0)
