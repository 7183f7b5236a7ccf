"""staff over time: managers of several teams, last activity, hand-overs, the team pool

Revision ID: 0007_staff_over_time
Revises: 0006_outbox_chats
Create Date: 2026-12-01 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sa.String)
from alembic import op

import storage.types

# revision identifiers, used by Alembic.
revision: str = "0007_staff_over_time"
down_revision: str | Sequence[str] | None = "0006_outbox_chats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_staff_id", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=10), nullable=False),
        sa.Column("new_team_id", sa.Integer(), nullable=True),
        sa.Column("successor_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("finished_at", storage.types.UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_staff_id"], ["staff.id"], name=op.f("fk_handovers_from_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["new_team_id"], ["teams.id"], name=op.f("fk_handovers_new_team_id_teams")
        ),
        sa.ForeignKeyConstraint(
            ["started_by"], ["staff.id"], name=op.f("fk_handovers_started_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"], ["staff.id"], name=op.f("fk_handovers_successor_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handovers")),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_handovers_from_staff_id"), ["from_staff_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_handovers_status"), ["status"], unique=False)

    op.create_table(
        "team_leads",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_team_leads_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_leads_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("staff_id", "team_id", name=op.f("pk_team_leads")),
    )
    with op.batch_alter_table("team_leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_leads_team_id"), ["team_id"], unique=False)

    op.create_table(
        "handover_picks",
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("successor_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_handover_picks_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"], ["handovers.id"], name=op.f("fk_handover_picks_handover_id_handovers")
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"], ["staff.id"], name=op.f("fk_handover_picks_successor_id_staff")
        ),
        sa.PrimaryKeyConstraint("handover_id", "customer_id", name=op.f("pk_handover_picks")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pooled_at", storage.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", storage.types.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_customers_pooled_at"), ["pooled_at"], unique=False)

    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", storage.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("last_seen_at")

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_pooled_at"))
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("pooled_at")

    op.drop_table("handover_picks")
    with op.batch_alter_table("team_leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_leads_team_id"))

    op.drop_table("team_leads")
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handovers_status"))
        batch_op.drop_index(batch_op.f("ix_handovers_from_staff_id"))

    op.drop_table("handovers")
