"""plan_cursor: how far the dated reminder planners have planned, so a poll re-reads only new
days and changed customers

Revision ID: 0018_plan_cursor
Revises: 0014_review_ux
Create Date: 2026-12-02 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0018_plan_cursor"
down_revision: str | Sequence[str] | None = "0015_staff_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reminder_plan_cursors",
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("planned_from", sa.Date(), nullable=False),
        sa.Column("planned_through", sa.Date(), nullable=False),
        sa.Column("changes_seen", storage.types.UTCDateTime(), nullable=True),
        sa.Column("last_customer_id", sa.Integer(), nullable=False),
        sa.Column("mark", sa.String(length=64), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("reminder_plan_cursors")
