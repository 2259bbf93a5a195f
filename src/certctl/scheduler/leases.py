"""Singleton-loop leases: one row per loop in `scheduler_leases`, taken with one conditional UPDATE.

The row is created on first use with `INSERT … ON CONFLICT DO NOTHING` (PostgreSQL and SQLite ≥ 3.24),
so two replicas starting together cannot collide; whoever's UPDATE then matches holds the lease. On
PostgreSQL a concurrent UPDATE waits for the row lock and re-checks the condition against the winner's
row; on SQLite the write transactions run one at a time (`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from certctl.db.engine import Database
from certctl.scheduler.models import SchedulerLease


class LeaseStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure_row(self, name: str) -> None:
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(SchedulerLease).values(name=name, holder=None, lease_until=None)
        self.session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

    def take(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Hold the lease until `now + ttl` if it is free, expired or already `holder`'s."""
        stmt = (
            update(SchedulerLease)
            .where(
                SchedulerLease.name == name,
                or_(
                    SchedulerLease.holder.is_(None),
                    SchedulerLease.holder == holder,
                    SchedulerLease.lease_until.is_(None),
                    SchedulerLease.lease_until < now,
                ),
            )
            .values(holder=holder, lease_until=now + ttl)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(self.session, stmt) == 1

    def give_up(self, name: str, holder: str) -> bool:
        stmt = (
            update(SchedulerLease)
            .where(SchedulerLease.name == name, SchedulerLease.holder == holder)
            .values(holder=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(self.session, stmt) == 1

    def current(self, name: str) -> SchedulerLease | None:
        return self.session.scalars(select(SchedulerLease).where(SchedulerLease.name == name)).first()


class Leases:
    """Lease operations, each in its own short transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def try_acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """True when `holder` now holds `name` until `now + ttl` (taken if free or expired, renewed if ours)."""
        if ttl <= timedelta(0):
            raise ValueError("lease ttl must be positive")
        with self._db.begin() as session:
            store = LeaseStore(session)
            store.ensure_row(name)
            return store.take(name, holder, now, ttl)

    def release(self, name: str, holder: str) -> bool:
        """Free the lease if `holder` has it, so a standby replica can take over at its next tick."""
        with self._db.begin() as session:
            return LeaseStore(session).give_up(name, holder)

    def holder_of(self, name: str, now: datetime) -> str | None:
        """Who holds `name` at `now`, or None when it is free or expired."""
        with self._db.begin() as session:
            lease = LeaseStore(session).current(name)
        if lease is None or lease.holder is None or lease.lease_until is None or lease.lease_until < now:
            return None
        return lease.holder


def _rowcount(session: Session, stmt: Update) -> int:
    return cast(CursorResult[Any], session.execute(stmt)).rowcount
