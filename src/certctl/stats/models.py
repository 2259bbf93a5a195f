"""Row counts kept on write: the dashboard reads a few hundred small rows instead of counting every row.

Database triggers (revision 0004) add one signed row per change of a counted key, in the same transaction
as the change, so the counts can never disagree with the rows and every write path is covered (ORM, bulk
statements, raw SQL, cascades). Writers only ever insert here, so they never wait on one another; the
rows are folded into one row per key from time to time (`StatsStore.fold_counts`).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base

# A Failed job with a retry scheduled is still on its way to an outcome; the dashboard counts it as pending.
JOB_RETRYING_STATE = "Failed/retry"


class StatusCountRow(Base):
    """One signed contribution to the number of rows of `table_name` in `state` (and expiry day).

    The number of rows with a key is the sum of `delta` over the rows with that key. Keys: for
    `managed_certificates`, the stored status and the UTC day of `expires_at` (NULL when unset), so counts
    up to a day boundary are sums; for `jobs`, the stored status, with Failed jobs that have a retry
    scheduled counted as `Failed/retry`, and no day.
    """

    __tablename__ = "status_counts"

    # BIGSERIAL on PostgreSQL; SQLite's INTEGER PRIMARY KEY is its rowid.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32))
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    delta: Mapped[int] = mapped_column(BigInteger)
    folded: Mapped[bool] = mapped_column(default=False, server_default="0")
