from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from certctl.db.engine import Database
from tests.jobs.conftest import db

__all__ = ["db", "local_db"]


@pytest.fixture
def local_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """A SQLite database for scheduler tests whose loops never touch it (no singleton leases)."""
    path = tmp_path / "local.db"
    shutil.copy(sqlite_template, path)
    database = Database.from_url(f"sqlite:///{path}")
    yield database
    database.dispose()
