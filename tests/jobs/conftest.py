from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.jobs.service import JobQueue
from tests.jobs.factories import empty_postgres, seed_certificates


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_migrated_url: str | None
) -> str:
    """The root fixture's migrated empty database on each engine, emptied faster on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "certctl.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if pg_migrated_url is None:
        pytest.skip("PostgreSQL not available (set CERTCTL_TEST_DATABASE_URL)")
    empty_postgres(pg_migrated_url)
    return pg_migrated_url


@pytest.fixture
def postgres_url(pg_migrated_url: str | None) -> str:
    """An empty migrated PostgreSQL database, for tests that are about PostgreSQL only."""
    if pg_migrated_url is None:
        pytest.skip("PostgreSQL not available (set CERTCTL_TEST_DATABASE_URL)")
    empty_postgres(pg_migrated_url)
    return pg_migrated_url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    yield database
    database.dispose()


@pytest.fixture
def queue(db: Database, clock: FrozenClock) -> JobQueue:
    return JobQueue(db, clock)


@pytest.fixture
def cert(db: Database, clock: FrozenClock) -> str:
    """One certificate whose renewal policy retries after 60 s."""
    return seed_certificates(db, clock.now())[0]
