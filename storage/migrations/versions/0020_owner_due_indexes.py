"""owner_due_indexes: the daily planners pick each owner's oldest few records from an index

Re-check prompts (定期更新) and survey prompts go to each owner a few a day, oldest first. The
planners ranked every approved customer per owner to keep five each: over a million customers a
window over 900,000 rows, 1.1 to 1.7 s a run. With these indexes each owner's few are an index
seek: 0.02 s for 1,100 owners (issue 14).

Revision ID: 0020_owner_due_indexes
Revises: 0019_due_indexes
Create Date: 2026-12-02 22:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0020_owner_due_indexes"
down_revision: str | Sequence[str] | None = "0019_due_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# as in storage.models (OWNER_DUE, OUT_OF_POOL, RECHECK_BASIS) when this migration was written;
# partial, out of the pool only: PostgreSQL does not read rows in index order past a column
# filtered by IS NULL, and sorted each owner's rows
OWNER_DUE = ["owner_id", "status"]
OUT_OF_POOL = "pooled_at IS NULL"
RECHECK_BASIS = "coalesce(last_checked_at, approved_at)"


def _partial(name: str, columns: list[str | sa.TextClause]) -> None:
    where = sa.text(OUT_OF_POOL)
    op.create_index(name, "customers", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _partial("ix_customers_recheck_due", [*OWNER_DUE, sa.text(RECHECK_BASIS)])
    _partial("ix_customers_survey_due", [*OWNER_DUE, "approved_at"])


def downgrade() -> None:
    op.drop_index("ix_customers_survey_due", table_name="customers")
    op.drop_index("ix_customers_recheck_due", table_name="customers")
