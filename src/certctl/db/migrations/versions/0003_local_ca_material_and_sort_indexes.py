"""Local CA material (encrypted key) per issuer; indexes for certificate keyset pages and dashboard counts.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Every sort key of the certificate list whitelist gets a (key, id) index, so a cursor page is an index
# range scan however deep it is (created_at and expires_at have theirs since 0001; name is unique).
SORT_INDEXES = {
    "ix_managed_certificates_common_name_id": ["common_name", "id"],
    "ix_managed_certificates_updated_at_id": ["updated_at", "id"],
    "ix_managed_certificates_status_id": ["status", "id"],
    "ix_managed_certificates_environment_id": ["environment", "id"],
    # Dashboard counts by expiry window and status read only this index (stats/summary).
    "ix_managed_certificates_expires_at_status": ["expires_at", "status"],
}


def upgrade() -> None:
    op.create_table(
        "issuer_ca_material",
        sa.Column("issuer_id", sa.String(length=64), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["issuers.id"], name=op.f("fk_issuer_ca_material_issuer_id_issuers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("issuer_id", name=op.f("pk_issuer_ca_material")),
    )
    with op.batch_alter_table("managed_certificates") as batch_op:
        for name, columns in SORT_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    with op.batch_alter_table("jobs") as batch_op:
        # Terminal-failure counts and the retry sweep (status = Failed, next_retry_at ≤ now).
        batch_op.create_index("ix_jobs_status_next_retry_at", ["status", "next_retry_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_status_next_retry_at")
    with op.batch_alter_table("managed_certificates") as batch_op:
        for name in SORT_INDEXES:
            batch_op.drop_index(name)
    op.drop_table("issuer_ca_material")
