"""conversations.started_by: who started a conversation (may reset it or change its model)

Existing conversations are backfilled from their first user message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 07:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_by", sa.String(length=64), nullable=True))
    conversations = sa.table("conversations", sa.column("id"), sa.column("started_by"))
    messages = sa.table(
        "messages", sa.column("id"), sa.column("conversation_id"), sa.column("role"), sa.column("user_id")
    )
    first = (
        sa.select(messages.c.user_id)
        .where(
            messages.c.conversation_id == conversations.c.id,
            messages.c.role == "user",
            messages.c.user_id.is_not(None),
        )
        .order_by(messages.c.id)
        .limit(1)
        .scalar_subquery()
    )
    op.execute(conversations.update().where(conversations.c.started_by.is_(None)).values(started_by=first))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("started_by")
