"""The seed's retry and dead-letter schema (original migration 000016, I-005).

retry_count (NOT NULL DEFAULT 0), next_retry_at, last_error (TEXT: full HTTP bodies and SMTP replies fit)
and the partial index idx_notification_events_retry_sweep over rows waiting for a retry. Dead rows clear
next_retry_at, so the index stops matching them. Every step checks the catalog first: the upgrade is safe
to run again after a partial rollback, as the original's re-runnable SQL was. The downgrade rewrites no
status: dead rows stay dead (the record of undelivered alerts is kept).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "notification_events"
RETRY_SWEEP_INDEX = "idx_notification_events_retry_sweep"
RETRY_SWEEP_PREDICATE = "status = 'failed' AND next_retry_at IS NOT NULL"


def _retry_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("retry_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def _columns() -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(TABLE)}


def _indexes() -> set[str]:
    return {str(index["name"]) for index in sa.inspect(op.get_bind()).get_indexes(TABLE)}


def upgrade() -> None:
    present = _columns()
    missing = [column for column in _retry_columns() if column.name not in present]
    if missing:
        with op.batch_alter_table(TABLE) as batch_op:
            for column in missing:
                batch_op.add_column(column)
    if RETRY_SWEEP_INDEX not in _indexes():
        op.create_index(
            RETRY_SWEEP_INDEX,
            TABLE,
            ["next_retry_at"],
            unique=False,
            postgresql_where=sa.text(RETRY_SWEEP_PREDICATE),
            sqlite_where=sa.text(RETRY_SWEEP_PREDICATE),
        )


def downgrade() -> None:
    # Index first, then the columns, each only if present (the original's IF EXISTS).
    if RETRY_SWEEP_INDEX in _indexes():
        op.drop_index(RETRY_SWEEP_INDEX, table_name=TABLE)
    present = _columns()
    doomed = [name for name in ("last_error", "next_retry_at", "retry_count") if name in present]
    if doomed:
        with op.batch_alter_table(TABLE) as batch_op:
            for name in doomed:
                batch_op.drop_column(name)
