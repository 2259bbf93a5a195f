"""Engine behaviour the rest of certctl relies on: SQLite pragmas and locking, UTC datetimes on both engines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, event, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from certctl.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database, make_engine
from certctl.db.types import UTCDateTime
from certctl.org.models import Owner, Team
from certctl.scheduler.models import SchedulerLease

T0 = datetime(2026, 3, 1, 12, 34, 56, 123456, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    path = tmp_path / "certctl.db"
    path.write_bytes(sqlite_template.read_bytes())
    database = Database.from_url(f"sqlite:///{path}")
    yield database
    database.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS


def test_sqlite_creates_the_parent_directory_of_a_new_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'deeper' / 'certctl.db'}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert (tmp_path / "nested" / "deeper" / "certctl.db").exists()
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.begin() as session:
        session.add(Owner(id="o-1", name="Alice", team_id="t-missing", created_at=T0, updated_at=T0))
    with db.begin() as session:
        assert session.scalar(select(Owner)) is None


def test_deleting_a_team_cascades_to_its_owners(db: Database) -> None:
    with db.begin() as session:
        session.add(Team(id="t-1", name="web", created_at=T0, updated_at=T0))
        session.flush()
        session.add(Owner(id="o-1", name="Alice", team_id="t-1", created_at=T0, updated_at=T0))
    with db.begin() as session:
        session.execute(text("DELETE FROM teams WHERE id = 't-1'"))
    with db.begin() as session:
        assert session.get(Owner, "o-1") is None


def test_a_failed_block_rolls_back_everything_it_wrote(db: Database) -> None:
    def write_then_fail() -> None:
        with db.begin() as session:
            session.add(Team(id="t-1", name="web", created_at=T0, updated_at=T0))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    with db.begin() as session:
        assert session.get(Team, "t-1") is None


def test_an_outer_rollback_discards_commits_made_inside_it(db: Database) -> None:
    """STYLE.md 11.2: on SQLite this holds only because the driver's own transaction handling is off."""
    with db.engine.connect() as conn, conn.begin() as outer:
        factory = sessionmaker(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
        with factory() as session:
            session.add(Team(id="t-1", name="web", created_at=T0, updated_at=T0))
            session.commit()
        assert conn.scalar(text("SELECT count(*) FROM teams")) == 1
        outer.rollback()
    with db.begin() as session:
        assert session.get(Team, "t-1") is None


# --- UTCDateTime ----------------------------------------------------------------------------------


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime refused"), db.begin() as session:
        session.add(Team(id="t-1", name="web", created_at=datetime(2026, 1, 1), updated_at=T0))
    with db.begin() as session:
        assert session.get(Team, "t-1") is None


def test_naive_datetimes_are_refused_in_query_parameters_too(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime refused"), db.begin() as session:
        session.scalars(select(Team).where(Team.created_at < datetime(2026, 1, 1))).all()


@pytest.mark.parametrize(
    "written",
    [
        T0,
        T0.astimezone(timezone(timedelta(hours=5, minutes=30))),
        T0.astimezone(timezone(timedelta(hours=-8))),
    ],
    ids=["utc", "plus-0530", "minus-0800"],
)
def test_datetimes_come_back_as_the_same_instant_in_utc_with_microseconds(db: Database, written: datetime) -> None:
    with db.begin() as session:
        session.add(Team(id="t-1", name="web", created_at=written, updated_at=written))
    with db.sessions() as session:
        stored = session.scalars(select(Team.created_at)).one()
    assert stored == T0
    assert stored.tzinfo is UTC
    assert stored.utcoffset() == timedelta(0)
    assert stored.microsecond == 123456


def test_time_comparisons_in_queries_use_the_instant_not_the_offset(db: Database) -> None:
    with db.begin() as session:
        for i in range(3):
            at = T0 + timedelta(hours=i)
            session.add(Team(id=f"t-{i}", name=f"team-{i}", created_at=at, updated_at=at))
    # 13:34:56.123456 UTC spelled in UTC+05:30; a string comparison of the offsets would get this wrong.
    boundary = (T0 + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5, minutes=30)))
    with db.sessions() as session:
        later = session.scalars(select(Team.id).where(Team.created_at >= boundary).order_by(Team.id)).all()
        exact = session.scalars(select(Team.id).where(Team.created_at == boundary)).all()
    assert later == ["t-1", "t-2"]
    assert exact == ["t-1"]


def test_nulls_pass_through_utc_datetime(db: Database) -> None:
    with db.begin() as session:
        session.add(SchedulerLease(name="renewal", holder=None, lease_until=None))
    with db.sessions() as session:
        assert session.get(SchedulerLease, "renewal").lease_until is None  # type: ignore[union-attr]


def test_utc_datetime_on_a_plain_table_round_trips_on_each_engine(db: Database) -> None:
    scratch = MetaData()
    table = Table("scratch_times", scratch, Column("id", String(8), primary_key=True), Column("at", UTCDateTime))
    scratch.create_all(db.engine)
    try:
        with db.engine.begin() as conn:
            conn.execute(table.insert(), [{"id": "a", "at": T0}, {"id": "b", "at": None}])
        with db.engine.connect() as conn:
            rows = {ident: at for ident, at in conn.execute(select(table.c.id, table.c.at))}
        assert rows == {"a": T0, "b": None}
        assert rows["a"] is not None
        assert rows["a"].tzinfo is UTC
    finally:
        scratch.drop_all(db.engine)


# --- concurrent writers on SQLite ----------------------------------------------------------------


def _run_threads(targets: list[threading.Thread], timeout: float = 60) -> None:
    for thread in targets:
        thread.start()
    for thread in targets:
        thread.join(timeout)
        assert not thread.is_alive(), "a writer thread hung"


def test_two_sqlite_writers_doing_read_modify_write_neither_fail_nor_lose_updates(sqlite_db: Database) -> None:
    """With deferred BEGIN, two readers upgrading to writers deadlock and one gets SQLITE_BUSY at once;
    BEGIN IMMEDIATE takes the write lock up front, so the second waits (busy timeout) instead."""
    with sqlite_db.begin() as session:
        session.add(SchedulerLease(name="counter", holder="0"))
    rounds = 40
    errors: list[BaseException] = []
    start = threading.Barrier(2, timeout=30)

    def writer() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                with sqlite_db.begin() as session:
                    lease = session.get(SchedulerLease, "counter", populate_existing=True)
                    assert lease is not None
                    assert lease.holder is not None
                    lease.holder = str(int(lease.holder) + 1)
        except BaseException as exc:
            errors.append(exc)

    _run_threads([threading.Thread(target=writer) for _ in range(2)])

    assert errors == []
    with sqlite_db.sessions() as session:
        assert session.get(SchedulerLease, "counter").holder == str(2 * rounds)  # type: ignore[union-attr]


def test_a_sqlite_writer_waits_for_the_lock_holder_instead_of_failing(sqlite_db: Database) -> None:
    holder_has_lock = threading.Event()
    waiter_done = threading.Event()
    waiter_errors: list[BaseException] = []

    def waiter() -> None:
        try:
            holder_has_lock.wait(30)
            with sqlite_db.begin() as session:
                session.add(Team(id="t-waiter", name="waiter", created_at=T0, updated_at=T0))
        except BaseException as exc:
            waiter_errors.append(exc)
        finally:
            waiter_done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        with sqlite_db.begin() as session:
            session.add(Team(id="t-holder", name="holder", created_at=T0, updated_at=T0))
            session.flush()
            holder_has_lock.set()
            # While the write lock is held the other writer can neither finish nor give up.
            assert not waiter_done.wait(0.5)
    finally:
        thread.join(30)
    assert not thread.is_alive()
    assert waiter_errors == []
    with sqlite_db.sessions() as session:
        assert set(session.scalars(select(Team.id))) == {"t-holder", "t-waiter"}


def test_concurrent_inserts_from_many_sessions_all_land(sqlite_db: Database) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=30)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(25):
                with sqlite_db.begin() as session:
                    session.add(Team(id=f"t-{n}-{i}", name=f"team-{n}-{i}", created_at=T0, updated_at=T0))
        except BaseException as exc:
            errors.append(exc)

    _run_threads([threading.Thread(target=writer, args=(n,)) for n in range(4)])
    assert errors == []
    with Session(sqlite_db.engine) as session:
        assert session.scalar(text("SELECT count(*) FROM teams")) == 100


# PostgreSQL pool ------------------------------------------------------------------------------------


def _postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's pool")


def test_postgresql_keeps_every_connection_it_opened_up_to_max_conns(database_url: str) -> None:
    """Under load no connection is closed after use: each new one costs the server a backend start."""
    db = Database.from_url(database_url, max_conns=8)
    try:
        _postgresql(db)
        held = [db.engine.connect() for _ in range(7)]
        for conn in held:
            conn.execute(text("SELECT 1"))
        for conn in held:
            conn.close()
        assert db.engine.pool.checkedin() == 7  # type: ignore[attr-defined]
    finally:
        db.dispose()


def test_a_pooled_connection_that_died_while_idle_is_replaced_unnoticed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("certctl.db.engine.PING_AFTER_IDLE_SECONDS", 0.0)
    db = Database.from_url(database_url, max_conns=2)
    try:
        _postgresql(db)
        with db.engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        other = make_engine(database_url)
        with other.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        other.dispose()
        with db.begin() as session:  # the idle connection fails its ping and a fresh one serves
            second = session.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second != first
    finally:
        db.dispose()


def test_a_recently_used_connection_is_not_pinged(database_url: str) -> None:
    db = Database.from_url(database_url)
    try:
        _postgresql(db)
        statements: list[str] = []
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        with db.begin() as session:
            session.execute(text("SELECT 2"))
        assert statements == ["SELECT 2"]
    finally:
        db.dispose()
