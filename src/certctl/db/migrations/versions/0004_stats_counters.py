"""Row counts kept on write for the dashboard: status_counts, filled by triggers on certificates and jobs.

Every INSERT, UPDATE and DELETE on managed_certificates and jobs adds signed rows to status_counts in the
same transaction (stats/models.py says what a key is). Writers only insert there, so concurrent writers
never wait on a shared counter row and cannot deadlock on one. PostgreSQL uses statement-level triggers
with transition tables (a batch of 50 claimed jobs adds two rows, not a hundred); SQLite has only row
triggers. Upgrading creates the triggers first (on PostgreSQL that locks writers out of both tables until
the revision commits) and then counts the rows already there, so nothing is counted twice or missed.

Revision ID: 0004
Revises: 0003
"""

# ruff: noqa: S608 (every piece of SQL here is assembled from this module's constants, never from input)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RETRYING = "Failed/retry"  # stats/models.py JOB_RETRYING_STATE

# The counted key of a row, per table and dialect, as SQL over a row alias.
_PG_KEY = {
    "managed_certificates": ("{r}.status", "({r}.expires_at AT TIME ZONE 'UTC')::date"),
    "jobs": (f"CASE WHEN {{r}}.status = 'Failed' AND {{r}}.next_retry_at IS NOT NULL THEN '{RETRYING}' "
             "ELSE {r}.status END", "NULL::date"),
}  # fmt: skip
_SQLITE_KEY = {
    "managed_certificates": ("{r}.status", "date({r}.expires_at)"),
    "jobs": (f"CASE WHEN {{r}}.status = 'Failed' AND {{r}}.next_retry_at IS NOT NULL THEN '{RETRYING}' "
             "ELSE {r}.status END", "NULL"),
}  # fmt: skip
# Only these columns move a row between keys; SQLite's update trigger watches just them.
_KEY_COLUMNS = {"managed_certificates": "status, expires_at", "jobs": "status, next_retry_at"}
_INSERT = "INSERT INTO status_counts (table_name, state, expires_on, delta)"


def _pg_statements(table: str) -> list[str]:
    state, day = (part.format(r="r") for part in _PG_KEY[table])
    function = f"certctl_count_{table}"
    return [
        f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_INSERT}
                SELECT '{table}', {state}, {day}, count(*) FROM new_rows AS r GROUP BY 2, 3;
            ELSIF TG_OP = 'DELETE' THEN
                {_INSERT}
                SELECT '{table}', {state}, {day}, -count(*) FROM old_rows AS r GROUP BY 2, 3;
            ELSE
                {_INSERT}
                SELECT '{table}', state, expires_on, sum(delta) FROM (
                    SELECT {state} AS state, {day} AS expires_on, -1 AS delta FROM old_rows AS r
                    UNION ALL
                    SELECT {state}, {day}, 1 FROM new_rows AS r
                ) AS moved GROUP BY state, expires_on HAVING sum(delta) <> 0;
            END IF;
            RETURN NULL;
        END $$
        """,
        f"""CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {table}_count_update AFTER UPDATE ON {table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {table}_count_truncate AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION certctl_count_truncated()""",
    ]


def _sqlite_statements(table: str) -> list[str]:
    old_state, old_day = (part.format(r="OLD") for part in _SQLITE_KEY[table])
    new_state, new_day = (part.format(r="NEW") for part in _SQLITE_KEY[table])
    return [
        f"""CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table}
            BEGIN {_INSERT} VALUES ('{table}', {new_state}, {new_day}, 1); END""",
        f"""CREATE TRIGGER {table}_count_update AFTER UPDATE OF {_KEY_COLUMNS[table]} ON {table}
            WHEN ({old_state}) IS NOT ({new_state}) OR ({old_day}) IS NOT ({new_day})
            BEGIN {_INSERT} VALUES
                ('{table}', {old_state}, {old_day}, -1), ('{table}', {new_state}, {new_day}, 1);
            END""",
        f"""CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table}
            BEGIN {_INSERT} VALUES ('{table}', {old_state}, {old_day}, -1); END""",
    ]


def _backfill(table: str, key: dict[str, tuple[str, str]], true: str) -> str:
    state, day = (part.format(r="r") for part in key[table])
    return (
        "INSERT INTO status_counts (table_name, state, expires_on, delta, folded) "
        f"SELECT '{table}', {state}, {day}, count(*), {true} FROM {table} AS r GROUP BY 2, 3"
    )


TABLES = ("managed_certificates", "jobs")
TRIGGER_SUFFIXES = ("insert", "update", "delete")


def upgrade() -> None:
    op.create_table(
        "status_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_counts")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # A few hundred live rows, but churn leaves dead ones until autovacuum passes: a parallel scan's
        # start-up (milliseconds) would cost more than the whole sum.
        op.execute("ALTER TABLE status_counts SET (parallel_workers = 0)")
        op.execute(
            """
            CREATE OR REPLACE FUNCTION certctl_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM status_counts WHERE table_name = TG_TABLE_NAME;
                RETURN NULL;
            END $$
            """
        )
    for table in TABLES:
        for statement in _pg_statements(table) if postgresql else _sqlite_statements(table):
            op.execute(statement)
    # After the triggers: from here on every change is counted by them, and these see every earlier row.
    for table in TABLES:
        op.execute(_backfill(table, _PG_KEY if postgresql else _SQLITE_KEY, "true" if postgresql else "1"))


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        suffixes = (*TRIGGER_SUFFIXES, "truncate") if postgresql else TRIGGER_SUFFIXES
        for suffix in suffixes:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{suffix}" + (f" ON {table}" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS certctl_count_{table}()")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS certctl_count_truncated()")
    op.drop_table("status_counts")
