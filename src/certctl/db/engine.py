"""Engines and sessions: SQLite in WAL mode with BEGIN IMMEDIATE writes, PostgreSQL through psycopg 3."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, Table, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
PING_AFTER_IDLE_SECONDS = 10.0  # a pooled connection idle this long is pinged before use
INSERT_MANY_PAGE_ROWS = 1000  # SQLAlchemy's insertmanyvalues page: more rows than this are several statements
READ_ONLY_OPTION = "certctl_read_only"


def make_engine(url: str, *, max_conns: int = 25, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo)
    # Up to max_conns connections, opened on demand and then kept: under load an "overflow" connection
    # closed after every use costs a PostgreSQL backend start per transaction (≈ 3 ms of server CPU).
    engine = create_engine(
        url,
        echo=echo,
        pool_size=max_conns,
        max_overflow=0,
        insertmanyvalues_page_size=INSERT_MANY_PAGE_ROWS,
        connect_args={"connect_timeout": 10},
    )
    # Several rows of one table in a flush go out as one multi-row INSERT, as they do with RETURNING,
    # instead of psycopg's pipelined executemany (the psycopg2 dialect does this by default).
    engine.dialect.use_insertmanyvalues_wo_returning = True
    _ping_idle_connections(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        set_json_loads(_json_loads, dbapi_connection)

    return engine


_EMPTY_JSON: dict[bytes, type[list[Any]] | type[dict[str, Any]]] = {b"[]": list, b"{}": dict}


def _json_loads(data: str | bytes) -> Any:
    """psycopg's JSON loader, with empty arrays and objects (most SANs and tags) made without parsing:
    a list page reads two JSON columns per row."""
    if isinstance(data, str):
        return json.loads(data)
    empty = _EMPTY_JSON.get(data)
    return empty() if empty is not None else json.loads(data.decode())


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection on checkout only if it sat idle for a while (pool_pre_ping checks every
    time: one extra round trip per transaction). One that fails is replaced, as with pool_pre_ping."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: let the pool open a fresh connection (it retries the checkout)
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control away from the driver so "begin" below decides how to begin;
        # without this, outer test rollbacks silently keep rows (STYLE.md 11.2).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock at the start, so two writers never deadlock upgrading a read
        # lock. Read-only work (Database.read) begins deferred: in WAL mode it never waits for a
        # writer, and a read inside a write (same thread, another connection) cannot deadlock.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


class Database:
    """An engine and its session factory; `with db.begin() as session:` commits or rolls back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, max_conns: int = 25) -> Database:
        return cls(make_engine(url, max_conns=max_conns))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads (not enforced): deferred BEGIN on SQLite, ordinary on PostgreSQL."""
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session

    def insert_committed(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert `rows` into `table` and commit, outside any session: on PostgreSQL one multi-row INSERT in
        autocommit (one round trip; a single statement is all or nothing), on SQLite a short transaction."""
        if self.dialect == "postgresql" and len(rows) <= INSERT_MANY_PAGE_ROWS:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(insert(table), list(rows))
            return
        with self.engine.begin() as connection:
            connection.execute(insert(table), list(rows))

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
