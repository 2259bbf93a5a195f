"""Schema migrations (Alembic, numbered revisions) run programmatically: no alembic.ini to ship."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("certctl.db") / "migrations"))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, lambda config: command.downgrade(config, revision))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def _run(engine: Engine, action: object) -> None:
    config = alembic_config(engine)
    with engine.connect() as connection:
        # On SQLite the engine's BEGIN IMMEDIATE hook applies here too: the migration holds the write lock.
        config.attributes["connection"] = connection
        action(config)  # type: ignore[operator]
        connection.commit()
