"""due_indexes: the reminder planners read their date ranges from covering indexes

The follow-up planner, the overdue escalation and the catch-up after days down each read a
date range of customers (by next follow-up date, or by last visit for a class cycle). Over a
million customers a week's range is some 70,000 rows, each a look-up in the table when the
index holds only the date: the catch-up alone took over a second. These indexes lead with the
same date, so they serve every query the single-column ones did, and hold what the planners
filter on and read, so the range is read from the index alone (issue 14).

Revision ID: 0019_due_indexes
Revises: 0018_plan_cursor
Create Date: 2026-12-02 18:00:00
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0019_due_indexes"
down_revision: str | Sequence[str] | None = "0018_plan_cursor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# as in storage.models (FOLLOWUP_DUE, VISIT_DUE) when this migration was written
FOLLOWUP_DUE = [
    "next_followup_on", "status", "pooled_at", "last_visit_on", "owner_id", "team_id", "id"
]  # fmt: skip
VISIT_DUE = [
    "last_visit_on", "next_followup_on", "customer_class", "status", "pooled_at", "owner_id",
    "team_id", "id",
]  # fmt: skip


def upgrade() -> None:
    op.create_index("ix_customers_followup_due", "customers", FOLLOWUP_DUE)
    op.create_index("ix_customers_visit_due", "customers", VISIT_DUE)
    op.drop_index("ix_customers_next_followup_on", table_name="customers")
    op.drop_index("ix_customers_last_visit_on", table_name="customers")


def downgrade() -> None:
    op.create_index("ix_customers_last_visit_on", "customers", ["last_visit_on"])
    op.create_index("ix_customers_next_followup_on", "customers", ["next_followup_on"])
    op.drop_index("ix_customers_visit_due", table_name="customers")
    op.drop_index("ix_customers_followup_due", table_name="customers")
