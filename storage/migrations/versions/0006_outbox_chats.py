"""outbox messages to a chat: reminders.recipient_id may be NULL (a team's review group chat)

Revision ID: 0006_outbox_chats
Revises: 0005_delivered_prompts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outbox_chats"
down_revision: str | Sequence[str] | None = "0005_delivered_prompts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.alter_column("recipient_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM reminders WHERE recipient_id IS NULL")
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.alter_column("recipient_id", existing_type=sa.Integer(), nullable=False)
