"""Delivery bookkeeping beyond the seed: attempt history, claims, read flag, expiry-alert dedup key.

attempt_count counts every attempt (the first send is attempt 1); claimed_by / claim_expires_at let any
number of replicas share the queue without sending a row twice (notifications.md §2.10); read_at marks a
row read without stopping its delivery; threshold_days and event_action carry what expiry alerts and
PagerDuty need. notification_attempts keeps one row per attempt.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PENDING_INDEX = "idx_notification_events_pending"
PENDING_PREDICATE = "status = 'pending'"


def upgrade() -> None:
    with op.batch_alter_table("notification_events") as batch_op:
        batch_op.add_column(sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("read_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("threshold_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("event_action", sa.String(length=16), server_default="trigger", nullable=False))
    op.create_index(
        PENDING_INDEX,
        "notification_events",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text(PENDING_PREDICATE),
        sqlite_where=sa.text(PENDING_PREDICATE),
    )
    op.create_table(
        "notification_attempts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notification_events.id"],
            name=op.f("fk_notification_attempts_notification_id_notification_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
    )
    op.create_index(
        "ix_notification_attempts_notification_number",
        "notification_attempts",
        ["notification_id", "attempt_number"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("notification_attempts")
    op.drop_index(PENDING_INDEX, table_name="notification_events")
    with op.batch_alter_table("notification_events") as batch_op:
        for name in ("event_action", "threshold_days", "read_at", "claim_expires_at", "claimed_by", "attempt_count"):
            batch_op.drop_column(name)
