"""audit log chained by a keyed MAC: the wrapped MAC key

Revision ID: 0002_audit_mac
Revises: 0001_initial
Create Date: 2026-12-01 21:20:00

Entries already in the log keep their plain SHA-256 links and still verify: the MAC key is
created by the first entry written after this migration, and records how far the old links go.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0002_audit_mac"
down_revision: str | Sequence[str] | None = "0001_initial"
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


def downgrade() -> None:
    op.drop_table("audit_keys")
