"""Alembic environment: runs against the connection or URL handed in by `certctl.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from certctl.db.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through table copies
        compare_server_default=True,
        transaction_per_migration=True,
        render_item=config.attributes.get("render_item"),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
