"""Revocation and trust: the revocation ledger, CRL cache and history, OCSP responder certificates, the
intermediate CA hierarchy (pki.md §A1.6, §A2) and the issuers' revocation revision.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIME = sa.DateTime(timezone=True)
_ACTIVE_ROOT = "parent_ca_id IS NULL AND state = 'active'"


def _issuer_fk(table: str, column: str = "issuer_id", ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["issuers.id"], name=op.f(f"fk_{table}_{column}_issuers"), ondelete=ondelete
    )


def upgrade() -> None:
    op.add_column("issuers", sa.Column("revocation_revision", sa.BigInteger(), server_default="0", nullable=False))

    op.create_table(
        "certificate_revocations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("certificate_id", sa.String(length=64), nullable=True),
        sa.Column("issuer_id", sa.String(length=64), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("revoked_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", _TIME, nullable=False),
        sa.Column("not_after", _TIME, nullable=False),
        sa.Column("short_lived", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("issuer_notified", sa.Boolean(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["managed_certificates.id"],
            name=op.f("fk_certificate_revocations_certificate_id_managed_certificates"),
            ondelete="SET NULL",
        ),
        _issuer_fk("certificate_revocations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_revocations")),
        sa.UniqueConstraint("issuer_id", "serial_number", name="uq_certificate_revocations_issuer_serial"),
    )
    with op.batch_alter_table("certificate_revocations") as batch_op:
        batch_op.create_index("ix_certificate_revocations_certificate_id", ["certificate_id"], unique=False)
        batch_op.create_index("ix_certificate_revocations_issuer_not_after", ["issuer_id", "not_after"], unique=False)
        batch_op.create_index("ix_certificate_revocations_serial_number", ["serial_number"], unique=False)

    op.create_table(
        "crl_cache",
        sa.Column("issuer_id", sa.String(length=64), nullable=False),
        sa.Column("crl_der", sa.LargeBinary(), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("this_update", _TIME, nullable=False),
        sa.Column("next_update", _TIME, nullable=False),
        sa.Column("generated_at", _TIME, nullable=False),
        sa.Column("generation_duration_ms", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revoked_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
        _issuer_fk("crl_cache"),
        sa.PrimaryKeyConstraint("issuer_id", name=op.f("pk_crl_cache")),
    )
    op.create_table(
        "crl_generation_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("issuer_id", sa.String(length=64), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("duration_ms", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revoked_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _issuer_fk("crl_generation_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crl_generation_events")),
    )
    with op.batch_alter_table("crl_generation_events") as batch_op:
        batch_op.create_index("ix_crl_generation_events_issuer_id", ["issuer_id"], unique=False)

    op.create_table(
        "ocsp_responders",
        sa.Column("issuer_id", sa.String(length=64), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("cert_serial", sa.String(length=64), nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_alg", sa.String(length=16), nullable=False),
        sa.Column("not_before", _TIME, nullable=False),
        sa.Column("not_after", _TIME, nullable=False),
        sa.Column("rotated_from", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        _issuer_fk("ocsp_responders"),
        sa.PrimaryKeyConstraint("issuer_id", name=op.f("pk_ocsp_responders")),
    )

    op.create_table(
        "intermediate_cas",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owning_issuer_id", sa.String(length=64), nullable=False),
        sa.Column("parent_ca_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), server_default="active", nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_driver_id", sa.String(length=512), nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary(), nullable=True),
        sa.Column("not_before", _TIME, nullable=False),
        sa.Column("not_after", _TIME, nullable=False),
        sa.Column("path_len_constraint", sa.Integer(), nullable=True),
        sa.Column("name_constraints", _JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("ocsp_responder_url", sa.String(length=1024), nullable=True),
        sa.Column("metadata", _JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.CheckConstraint("state IN ('active', 'retiring', 'retired')", name=op.f("ck_intermediate_cas_state")),
        sa.CheckConstraint("not_after > not_before", name=op.f("ck_intermediate_cas_validity")),
        sa.CheckConstraint(
            "parent_ca_id IS NULL OR parent_ca_id <> id", name=op.f("ck_intermediate_cas_not_own_parent")
        ),
        _issuer_fk("intermediate_cas", "owning_issuer_id", ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["parent_ca_id"],
            ["intermediate_cas.id"],
            name=op.f("fk_intermediate_cas_parent_ca_id_intermediate_cas"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intermediate_cas")),
        sa.UniqueConstraint("owning_issuer_id", "name", name="uq_intermediate_cas_issuer_name"),
    )
    with op.batch_alter_table("intermediate_cas") as batch_op:
        batch_op.create_index("ix_intermediate_cas_owning_issuer_id", ["owning_issuer_id"], unique=False)
        batch_op.create_index("ix_intermediate_cas_parent_ca_id", ["parent_ca_id"], unique=False)
        batch_op.create_index(
            "uq_intermediate_cas_active_root",
            ["owning_issuer_id"],
            unique=True,
            postgresql_where=sa.text(_ACTIVE_ROOT),
            sqlite_where=sa.text(_ACTIVE_ROOT),
        )


def downgrade() -> None:
    op.drop_table("intermediate_cas")
    op.drop_table("ocsp_responders")
    op.drop_table("crl_generation_events")
    op.drop_table("crl_cache")
    op.drop_table("certificate_revocations")
    # Plain ALTER (SQLite ≥ 3.35 has DROP COLUMN): a batch rebuild of `issuers` would break its references.
    op.execute("ALTER TABLE issuers DROP COLUMN revocation_revision")
