"""review_ux: full review cards remembered for editing; a review group the bot lost

Revision ID: 0014_review_ux
Revises: 0013_delivery
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0014_review_ux"
down_revision: str | Sequence[str] | None = "0013_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_notices") as batch:
        batch.add_column(sa.Column("full", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("teams") as batch:
        batch.add_column(
            sa.Column("manager_chat_lost_at", storage.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("manager_chat_lost_at")
    with op.batch_alter_table("review_notices") as batch:
        batch.drop_column("full")
