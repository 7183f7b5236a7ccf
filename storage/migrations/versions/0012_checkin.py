"""checkin: a customer's sealed location; a visit's distance, flag, check-in and check-out

Revision ID: 0012_checkin
Revises: 0011_imports
Create Date: 2026-12-02 05:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0012_checkin"
down_revision: str | Sequence[str] | None = "0011_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("location_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column("location_set_at", storage.types.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkin_distance_m", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("checkin_flagged", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("checked_in_at", storage.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("checked_out_at", storage.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_column("checked_out_at")
        batch_op.drop_column("checked_in_at")
        batch_op.drop_column("checkin_flagged")
        batch_op.drop_column("checkin_distance_m")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("location_set_at")
        batch_op.drop_column("location_sealed")
