"""notification_events as the original's first migration made it (plus its later created_at column).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("certificate_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["managed_certificates.id"],
            name=op.f("fk_notification_events_certificate_id_managed_certificates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
    )
    with op.batch_alter_table("notification_events") as batch_op:
        batch_op.create_index("ix_notification_events_certificate_id", ["certificate_id"], unique=False)
        batch_op.create_index("ix_notification_events_status", ["status"], unique=False)
        batch_op.create_index("ix_notification_events_type", ["type"], unique=False)


def downgrade() -> None:
    op.drop_table("notification_events")
