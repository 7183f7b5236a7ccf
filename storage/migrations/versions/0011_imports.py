"""imports: a spreadsheet import between its dry run and its confirmation (no personal data)

Revision ID: 0011_imports
Revises: 0009_life_cycle
Create Date: 2026-12-02 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0011_imports"
down_revision: str | Sequence[str] | None = "0009_life_cycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("file_id", sa.String(length=255), nullable=True),
        sa.Column("file_size", sa.Integer(), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("accepted_digest", sa.String(length=64), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("finished_at", storage.types.UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_imports_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index(op.f("ix_imports_staff_id"), "imports", ["staff_id"], unique=False)
    op.create_index(op.f("ix_imports_status"), "imports", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_imports_status"), table_name="imports")
    op.drop_index(op.f("ix_imports_staff_id"), table_name="imports")
    op.drop_table("imports")
