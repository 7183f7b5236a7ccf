"""staff_changes: one row whose stamp every change to staff or team_leads renews (triggers)

The gate caches members between updates and re-reads one only when this stamp moved, so a
change made by any process (another bot instance, the CLI, a restore) reaches every cache on
its next update. The stamp is random, not a counter: a restored backup can never bring back
a value a cache already holds for newer rows.

Revision ID: 0015_staff_changes
Revises: 0014_review_ux
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0015_staff_changes"
down_revision: str | Sequence[str] | None = "0014_review_ux"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("staff", "team_leads")
SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    op.create_table(
        "staff_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("INSERT INTO staff_changes (id, stamp) VALUES (1, random())")
        for table in WATCHED:
            for kind in SQLITE_EVENTS:
                op.execute(
                    f"CREATE TRIGGER {table}_{kind.lower()}_renews_stamp AFTER {kind} ON {table} "
                    "BEGIN UPDATE staff_changes SET stamp = random() WHERE id = 1; END"
                )
        return
    op.execute(
        "INSERT INTO staff_changes (id, stamp) "
        "VALUES (1, floor(random() * 9007199254740991)::bigint)"
    )
    # BEFORE each statement: the stamp's row lock is taken before any staff row's, so two
    # transactions changing staff queue on it instead of deadlocking
    op.execute(
        "CREATE FUNCTION renew_staff_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "UPDATE staff_changes SET stamp = floor(random() * 9007199254740991)::bigint "
        "WHERE id = 1; RETURN NULL; END $$"
    )
    for table in WATCHED:
        op.execute(
            f"CREATE TRIGGER {table}_renews_stamp BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION renew_staff_stamp()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in WATCHED:
            for kind in SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{kind.lower()}_renews_stamp")
    else:
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_renews_stamp ON {table}")
        op.execute("DROP FUNCTION IF EXISTS renew_staff_stamp()")
    op.drop_table("staff_changes")
