"""Tool approval: the ``tool_approvals`` table (one row per gated tool call: its redacted arguments and the
decision, approved / denied / timed out, by whom and when) and per-channel approval patterns
(``channel_policies.approval_tools``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tool_approvals",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", ID, nullable=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_by_name", sa.String(128), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tool_call_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tool_approvals_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tool_call_id"],
            ["tool_calls.id"],
            name=op.f("fk_tool_approvals_tool_call_id_tool_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool_approvals")),
    )
    op.create_index(
        op.f("ix_tool_approvals_conversation_id"), "tool_approvals", ["conversation_id"], unique=False
    )
    op.create_index(op.f("ix_tool_approvals_created_at"), "tool_approvals", ["created_at"], unique=False)
    with op.batch_alter_table("channel_policies") as batch:
        batch.add_column(sa.Column("approval_tools", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_policies") as batch:
        batch.drop_column("approval_tools")
    op.drop_index(op.f("ix_tool_approvals_created_at"), table_name="tool_approvals")
    op.drop_index(op.f("ix_tool_approvals_conversation_id"), table_name="tool_approvals")
    op.drop_table("tool_approvals")
