"""CRL cache and generation-history queries. Stores never commit; the service owns the transaction."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, String, delete, func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from certctl.crl.builder import LedgerRow
from certctl.crl.models import CRLCache, CRLGenerationEvent
from certctl.issuers.models import Issuer, IssuerType
from certctl.revocation.models import CertificateRevocation

CRL_LOCK_CLASS = 0x63726C  # "crl": the first key of the per-issuer PostgreSQL advisory lock
EVENTS_KEPT_PER_ISSUER = 200
"""Generation history kept per issuer (the admin view shows the latest few; the rest is pruned)."""


@dataclass(frozen=True, slots=True)
class IssuerRevocationState:
    issuer_id: str
    type: IssuerType
    enabled: bool
    revocation_revision: int


@dataclass(frozen=True, slots=True)
class CacheMeta:
    """A `crl_cache` row without its DER, for the cheap freshness check."""

    issuer_id: str
    crl_number: int
    this_update: datetime
    next_update: datetime
    generated_at: datetime
    generation_duration_ms: int
    revoked_count: int
    revision: int


_META_COLUMNS = (
    CRLCache.issuer_id,
    CRLCache.crl_number,
    CRLCache.this_update,
    CRLCache.next_update,
    CRLCache.generated_at,
    CRLCache.generation_duration_ms,
    CRLCache.revoked_count,
    CRLCache.revision,
)


class CRLStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_issuer(self, issuer_id: str) -> None:
        """Serialise CRL builds of one issuer across replicas until the transaction ends, so the CRL number
        never repeats or goes down. PostgreSQL: a transaction-scoped advisory lock (it does not block
        revocations, which update the issuer row); SQLite: the write transaction (BEGIN IMMEDIATE) already
        is the lock."""
        if self.session.get_bind().dialect.name == "postgresql":
            key = zlib.crc32(issuer_id.encode()) - 2**31  # an int4; a collision only serialises two issuers
            self.session.execute(select(func.pg_advisory_xact_lock(CRL_LOCK_CLASS, key)))

    def issuer_state(self, issuer_id: str) -> IssuerRevocationState | None:
        row = self.session.execute(
            select(Issuer.id, Issuer.type, Issuer.enabled, Issuer.revocation_revision).where(Issuer.id == issuer_id)
        ).one_or_none()
        return None if row is None else IssuerRevocationState(*row)

    def issuer_states(self) -> list[IssuerRevocationState]:
        rows = self.session.execute(
            select(Issuer.id, Issuer.type, Issuer.enabled, Issuer.revocation_revision).order_by(Issuer.id)
        )
        return [IssuerRevocationState(*row) for row in rows]

    def ledger_rows(self, issuer_id: str, now: datetime) -> list[LedgerRow]:
        """(serial, UTC time digits, reason) of every revoked, unexpired, not short-lived certificate of the
        issuer (pki.md §A2.3: expired entries drop off, short-lived ones never appear).

        The bulk twin of `RevocationStore.entries_for_crl`: a Core query (no ORM row processing) that has the
        database format the revocation time, so 100,000 rows cost no datetime objects at all.
        """
        r = CertificateRevocation
        rows = self.session.connection().execute(
            select(r.serial_number, _utc_digits(r.revoked_at, self.session.get_bind().dialect.name), r.reason).where(
                r.issuer_id == issuer_id, r.not_after > now, r.short_lived.is_(False)
            )
        )
        return [(serial, digits, reason) for serial, digits, reason in rows.all()]  # one fetchall, not 100,000

    def meta(self, issuer_id: str) -> CacheMeta | None:
        row = self.session.execute(select(*_META_COLUMNS).where(CRLCache.issuer_id == issuer_id)).one_or_none()
        return None if row is None else CacheMeta(*row)

    def all_meta(self) -> dict[str, CacheMeta]:
        return {row[0]: CacheMeta(*row) for row in self.session.execute(select(*_META_COLUMNS))}

    def der(self, issuer_id: str) -> bytes | None:
        return self.session.scalar(select(CRLCache.crl_der).where(CRLCache.issuer_id == issuer_id))

    def save(self, row: CRLCache, *, exists: bool) -> None:
        """Insert or replace the issuer's row (the caller holds `lock_issuer`, so there is no race). An UPDATE
        by key, not `merge`: merge would first load the old row, megabytes of DER for a large CRL."""
        if not exists:
            self.session.add(row)
            return
        values = {column.key: getattr(row, column.key) for column in CRLCache.__table__.columns}
        self.session.execute(
            update(CRLCache)
            .where(CRLCache.issuer_id == row.issuer_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    def add_event(self, event: CRLGenerationEvent) -> None:
        self.session.add(event)
        self.session.flush()
        e = CRLGenerationEvent
        cutoff = self.session.scalar(
            select(e.started_at)
            .where(e.issuer_id == event.issuer_id)
            .order_by(e.started_at.desc())
            .offset(EVENTS_KEPT_PER_ISSUER)
            .limit(1)
        )
        if cutoff is not None:
            self.session.execute(delete(e).where(e.issuer_id == event.issuer_id, e.started_at <= cutoff))

    def recent_events(self, issuer_id: str, limit: int) -> Sequence[CRLGenerationEvent]:
        e = CRLGenerationEvent
        return self.session.scalars(
            select(e).where(e.issuer_id == issuer_id).order_by(e.started_at.desc(), e.id.desc()).limit(limit)
        ).all()


def _utc_digits(column: InstrumentedAttribute[datetime], dialect: str) -> ColumnElement[str]:
    """The instant as UTC digits YYYYMMDDHHMMSS, computed by the database."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYYMMDDHH24MISS", type_=String)
    return func.strftime("%Y%m%d%H%M%S", column, type_=String)  # SQLite keeps UTC text (db/types.py)
