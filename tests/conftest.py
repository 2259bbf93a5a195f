"""Shared fixtures: a migrated database per test on SQLite and on PostgreSQL, an app, API clients.

PostgreSQL comes from CERTCTL_TEST_DATABASE_URL (CI) or a local server on 127.0.0.1:5432; without one
the PostgreSQL half of every test skips, unless CERTCTL_REQUIRE_PEERS=1, where it fails.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from certctl.app import create_app
from certctl.bootstrap import prepare
from certctl.clock import Clock, FrozenClock
from certctl.config import Settings
from certctl.context import AppContext
from certctl.db import migrate
from certctl.db.engine import make_engine
from certctl.db.models import metadata

pytest_plugins = ["tests.hsm"]  # the SoftHSM session fixtures: one token directory for the whole run

REQUIRE_PEERS = os.environ.get("CERTCTL_REQUIRE_PEERS") == "1"
LOCAL_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEST_ENCRYPTION_KEY = "test-encryption-passphrase-0123456789abcdef"
API_KEYS = {
    "admin": ("admin-key-0123456789", "admin"),
    "operator": ("operator-key-0123456789", "operator"),
    "viewer": ("viewer-key-0123456789", "viewer"),
    "auditor": ("auditor-key-0123456789", "auditor"),
}
NAMED_KEYS = ",".join(f"{name}:{key}:{role}" for name, (key, role) in API_KEYS.items())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--sqlite-only", action="store_true", help="skip the PostgreSQL half of every test")


def _normalise(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@pytest.fixture(scope="session")
def pg_admin_url(request: pytest.FixtureRequest) -> str | None:
    """A URL on a PostgreSQL server where this run may create databases, or None."""
    if request.config.getoption("--sqlite-only"):
        return None
    url = _normalise(os.environ.get("CERTCTL_TEST_DATABASE_URL", LOCAL_PG))
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if REQUIRE_PEERS:
            pytest.fail(f"PostgreSQL required (CERTCTL_REQUIRE_PEERS=1) but unreachable at {url}: {exc}")
        return None
    finally:
        engine.dispose()
    return url


class PgDatabases:
    """Creates throwaway databases on the test server and drops them at the end of the run."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []

    def create(self, label: str) -> str:
        name = f"certctl_{label}_{uuid.uuid4().hex[:10]}"
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_databases(pg_admin_url: str | None) -> Iterator[PgDatabases | None]:
    if pg_admin_url is None:
        yield None
        return
    databases = PgDatabases(pg_admin_url)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "certctl.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_migrated_url(pg_databases: PgDatabases | None) -> str | None:
    if pg_databases is None:
        return None
    url = pg_databases.create("app")
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def empty_postgres(url: str) -> None:
    """Delete every row. DELETE on a handful of rows takes ~10 ms where TRUNCATE takes ~0.6 s (a new file
    per table, each synced). Replica mode skips foreign-key and append-only triggers: tests need a clean
    slate, the product never does this."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_migrated_url: str | None
) -> str:
    """A migrated, empty database for one test, on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "certctl.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if pg_migrated_url is None:
        pytest.skip("PostgreSQL not available (set CERTCTL_TEST_DATABASE_URL)")
    empty_postgres(pg_migrated_url)
    return pg_migrated_url


@pytest.fixture
def settings_factory(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "api_keys_named": NAMED_KEYS,
            "config_encryption_key": TEST_ENCRYPTION_KEY,
            "rate_limit_rps": 10_000,
            "rate_limit_burst": 10_000,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def context_factory(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., AppContext]]:
    built: list[AppContext] = []

    def build(clock: Clock | None = None, **overrides: Any) -> AppContext:
        # Env-seeded issuers (iss-local) are covered by their own test; other tests start with none.
        context = prepare(settings_factory(**overrides), clock, run_migrations=False, seed_issuers=False)
        built.append(context)
        return context

    yield build
    for context in built:
        # close(), not only dispose(): background work (a CRL rebuild queued by a revocation, a delivery)
        # finishes first, so no thread opens a connection in a fresh pool after the test.
        context.close()


@pytest.fixture
def context(context_factory: Callable[..., AppContext]) -> AppContext:
    return context_factory()


def client_for(context: AppContext, role: str | None = "admin") -> TestClient:
    headers = {"Authorization": f"Bearer {API_KEYS[role][0]}"} if role else {}
    return TestClient(create_app(context), headers=headers, base_url="https://testserver")


@pytest.fixture
def client(context: AppContext) -> Iterator[TestClient]:
    with client_for(context) as test_client:
        yield test_client


@pytest.fixture
def make_client(context: AppContext) -> Callable[..., TestClient]:
    return lambda role="admin": client_for(context, role)
