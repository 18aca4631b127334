"""tool calls audit and per-channel policies (tools, moderation thresholds)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 17:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "channel_policies",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("tools", JSON, nullable=True),
        sa.Column("moderation", JSON, nullable=True),
        sa.Column("set_by", sa.String(length=96), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_policies")),
        sa.UniqueConstraint(
            "platform",
            "workspace_id",
            "channel_id",
            name=op.f("uq_channel_policies_platform_workspace_id_channel_id"),
        ),
    )
    op.create_table(
        "tool_calls",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", ID, nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tool_calls_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool_calls")),
    )
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tool_calls_conversation_id"), ["conversation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tool_calls_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_tool_calls_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tool_calls_user_id"))
        batch_op.drop_index(batch_op.f("ix_tool_calls_created_at"))
        batch_op.drop_index(batch_op.f("ix_tool_calls_conversation_id"))
    op.drop_table("tool_calls")
    op.drop_table("channel_policies")
