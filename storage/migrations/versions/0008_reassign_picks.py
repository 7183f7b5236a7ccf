"""reassign picks: the customers someone ticked in /my to reassign together

Revision ID: 0008_reassign_picks
Revises: 0007_staff_over_time
Create Date: 2026-12-02 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0008_reassign_picks"
down_revision: str | Sequence[str] | None = "0007_staff_over_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reassign_picks",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("picked_at", storage.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_reassign_picks_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["staff.id"], name=op.f("fk_reassign_picks_owner_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_reassign_picks_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("staff_id", "customer_id", name=op.f("pk_reassign_picks")),
    )


def downgrade() -> None:
    op.drop_table("reassign_picks")
