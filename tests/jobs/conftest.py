from __future__ import annotations

from collections.abc import Iterator

import pytest

from certctl.clock import FrozenClock
from certctl.db.engine import Database
from certctl.jobs.service import JobQueue
from tests.conftest import empty_postgres
from tests.jobs.factories import seed_certificates


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
