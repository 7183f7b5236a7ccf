"""tamper evidence: the audit log's wrapped MAC key; customers' sealed blob counter

Revision ID: 0004_tamper_evidence
Revises: 0003_blind_index_key_person
Create Date: 2026-12-01 21:20:00

Entries already in the log keep their plain SHA-256 links and still verify: the MAC key is
created by the first entry written after this migration, and records how far the old links go.
`customers.sealed_seq` starts at 0 for blobs sealed before they were bound to it; those still
open, and rotate-keys re-seals them bound.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0004_tamper_evidence"
down_revision: str | Sequence[str] | None = "0003_blind_index_key_person"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kek_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("legacy_upto", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_keys")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sealed_seq", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("sealed_seq")
    op.drop_table("audit_keys")
