"""Feedback on answers: one 👍/👎 per user per answer (its turn's claim), with the model that answered.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answer_feedback",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("claim_id", ID, nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", ID, nullable=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("vote", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"],
            ["processed_events.id"],
            name=op.f("fk_answer_feedback_claim_id_processed_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_answer_feedback_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_feedback")),
        sa.UniqueConstraint("claim_id", "user_id", name=op.f("uq_answer_feedback_claim_id_user_id")),
    )
    op.create_index("ix_answer_feedback_at", "answer_feedback", ["created_at"])
    op.create_index("ix_answer_feedback_user", "answer_feedback", ["platform", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_answer_feedback_user", table_name="answer_feedback")
    op.drop_index("ix_answer_feedback_at", table_name="answer_feedback")
    op.drop_table("answer_feedback")
