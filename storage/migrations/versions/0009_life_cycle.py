"""life cycle: why an archive, reactivation or destruction was asked for

Revision ID: 0009_life_cycle
Revises: 0008_reassign_picks
Create Date: 2026-12-02 02:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_life_cycle"
down_revision: str | Sequence[str] | None = "0008_reassign_picks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("request_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("request_reason")
