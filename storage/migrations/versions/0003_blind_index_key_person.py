"""index blind_index.key_person_id

Deleting a key person's blind-index rows (edit, deletion, key rotation) scanned the whole
table: 84.7 ms per delete at 1.3 M rows, hours for a rotation.

Revision ID: 0003_blind_index_key_person
Revises: 0002_duplicate_checks
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003_blind_index_key_person"
down_revision: str | Sequence[str] | None = "0002_duplicate_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("blind_index", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_blind_index_key_person_id"), ["key_person_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("blind_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blind_index_key_person_id"))
