"""Audit trail is append-only: triggers refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_UP = [
    """
    CREATE OR REPLACE FUNCTION certctl_audit_events_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
    """
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION certctl_audit_events_append_only()
    """,
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION certctl_audit_events_append_only()
    """,
    # The application role (if the operator created one) may only insert and read.
    """
    DO $$ BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl') THEN
            REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM certctl;
        END IF;
    END $$
    """,
]
_PG_DOWN = [
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
    "DROP FUNCTION IF EXISTS certctl_audit_events_append_only()",
]
_SQLITE_UP = [
    "DROP TRIGGER IF EXISTS audit_events_no_update",
    """
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE is not allowed'); END
    """,
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE is not allowed'); END
    """,
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
    "DROP TRIGGER IF EXISTS audit_events_no_update",
]


def _execute(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    _execute(_PG_UP if op.get_bind().dialect.name == "postgresql" else _SQLITE_UP)


def downgrade() -> None:
    _execute(_PG_DOWN if op.get_bind().dialect.name == "postgresql" else _SQLITE_DOWN)
