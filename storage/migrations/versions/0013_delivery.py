"""delivery: who holds each reminder's claim, the sender instances' heartbeats, and an index
for planning changed key persons every poll

Revision ID: 0013_delivery
Revises: 0012_checkin
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0013_delivery"
down_revision: str | Sequence[str] | None = "0012_checkin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_instances",
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("started_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("seen_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_sender_instances")),
    )
    with op.batch_alter_table("reminders") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))
    op.create_index("ix_key_persons_updated_at", "key_persons", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_key_persons_updated_at", table_name="key_persons")
    with op.batch_alter_table("reminders") as batch:
        batch.drop_column("claimed_by")
    op.drop_table("sender_instances")
