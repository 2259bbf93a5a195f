"""The seed's catalog test (migration 000016, I-005) for our revision 0006, on SQLite and PostgreSQL:
up → down → up, each stage checked in the catalog, and the upgrade safe to run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from certctl.db import migrate
from certctl.db.engine import make_engine
from tests.conftest import PgDatabases

TABLE = "notification_events"
RETRY_COLUMNS = ("retry_count", "next_retry_at", "last_error")
INDEX = "idx_notification_events_retry_sweep"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PgDatabases | None) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'seed.db'}"
    elif pg_databases is None:
        pytest.skip("PostgreSQL not available (set CERTCTL_TEST_DATABASE_URL)")
    else:
        url = pg_databases.create("seed")
    built = make_engine(url)
    yield built
    built.dispose()


def columns(engine: Engine) -> dict[str, dict[str, object]]:
    return {str(c["name"]): dict(c) for c in inspect(engine).get_columns(TABLE)}


def index_definition(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            found = conn.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": INDEX})
        else:
            found = conn.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": INDEX})
    return str(found) if found is not None else None


def column_default(engine: Engine, column: str) -> str | None:
    raw = columns(engine)[column]["default"]
    return None if raw is None else str(raw)


def assert_retry_schema(engine: Engine) -> None:
    found = columns(engine)
    for name in RETRY_COLUMNS:
        assert name in found, f"{TABLE}.{name} missing"
    assert found["retry_count"]["nullable"] is False
    assert "0" in (column_default(engine, "retry_count") or "")
    assert found["next_retry_at"]["nullable"] is True
    assert found["last_error"]["nullable"] is True
    last_error_type = str(found["last_error"]["type"]).upper()
    assert last_error_type == "TEXT", f"last_error must be TEXT (untruncated), is {last_error_type}"
    definition = index_definition(engine)
    assert definition is not None, f"{INDEX} missing"
    assert "status = 'failed'" in definition
    assert "next_retry_at IS NOT NULL" in definition


def assert_retry_schema_gone(engine: Engine) -> None:
    found = columns(engine)
    for name in RETRY_COLUMNS:
        assert name not in found, f"{TABLE}.{name} survived the downgrade"
    assert index_definition(engine) is None


def test_retry_migration_up_down_up_and_rerun(engine: Engine) -> None:
    migrate.upgrade(engine)
    assert_retry_schema(engine)

    with engine.begin() as conn:  # a dead row must stay dead through the rollback
        conn.execute(
            text(
                "INSERT INTO notification_events (id, type, channel, recipient, message, status, created_at, "
                "retry_count, last_error) VALUES ('n-dead', 'RenewalFailure', 'Email', 'a@example.com', 'x', "
                "'dead', CURRENT_TIMESTAMP, 5, 'smtp 451 temporary failure')"
            )
        )
    migrate.downgrade(engine, "0005")
    assert_retry_schema_gone(engine)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT status FROM notification_events WHERE id = 'n-dead'")) == "dead"

    migrate.upgrade(engine)
    assert_retry_schema(engine)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT retry_count FROM notification_events WHERE id = 'n-dead'")) == 0

    # Running the 0006 upgrade again over an already upgraded schema is a no-op, not an error.
    config = migrate.alembic_config(engine)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.stamp(config, "0005")
        command.upgrade(config, "0006")
        command.stamp(config, "head")
        conn.commit()
    assert_retry_schema(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
