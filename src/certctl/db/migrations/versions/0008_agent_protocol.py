"""The agent protocol: credential look-up by hash, and the version a deployment job installs.

`agents.api_key_hash` is how a presented per-agent credential finds its agent (core.md §6.1);
`jobs.version_id` pins a Deployment job to the certificate version it deploys, so a renewal that lands
while the job waits does not change what the agent installs (agent-targets-discovery.md §A1.7); and a
target's Validation job ("test target") concerns no certificate, so `jobs.certificate_id` may be null.

SQLite changes a column's nullability by rebuilding the table, which drops its triggers: the row-count
triggers of 0004 are created again on the rebuilt `jobs` table (the copied rows were counted already).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _restore_sqlite_count_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        counters = importlib.import_module("certctl.db.migrations.versions.0004_stats_counters")
        for statement in counters._sqlite_statements("jobs"):
            op.execute(statement)


def upgrade() -> None:
    op.create_index("ix_agents_api_key_hash", "agents", ["api_key_hash"], unique=False)
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("version_id", sa.String(length=64), nullable=True))
        batch_op.alter_column("certificate_id", existing_type=sa.String(length=64), nullable=True)
    _restore_sqlite_count_triggers()


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE certificate_id IS NULL")  # target tests cannot exist before 0008
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.alter_column("certificate_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("version_id")
    _restore_sqlite_count_triggers()
    op.drop_index("ix_agents_api_key_hash", table_name="agents")
