"""Durable turns: a turn's place in its conversation's queue, its owner (a running replica) and where its
reply is, so turns run in order across replicas and a dead replica's turns can be resolved.

- processed_events: workspace_id, channel_id, thread_id (the conversation the event belongs to), user_id,
  owner (the replica running it), reply (where its reply is shown, for crash recovery); claimed rows indexed
  per conversation.
- replicas: one row per running process, with its heartbeat.
- reservations.event_id: the turn a budget hold belongs to, released when that turn is resolved.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLAIMED = "status = 'claimed'"


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workspace_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("channel_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("thread_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("user_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reply", JSON, nullable=True))
    op.create_index(
        "ix_processed_events_claimed",
        "processed_events",
        ["platform", "workspace_id", "channel_id", "thread_id", "id"],
        sqlite_where=sa.text(_CLAIMED),
        postgresql_where=sa.text(_CLAIMED),
    )
    op.create_index(
        "ix_processed_events_user_place",
        "processed_events",
        ["platform", "workspace_id", "channel_id", "user_id", "id"],
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f("ix_reservations_event_id"), ["event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reservations_event_id"))
        batch_op.drop_column("event_id")
    op.drop_table("replicas")
    op.drop_index("ix_processed_events_user_place", table_name="processed_events")
    op.drop_index("ix_processed_events_claimed", table_name="processed_events")
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        for column in ("reply", "owner", "user_id", "thread_id", "channel_id", "workspace_id"):
            batch_op.drop_column(column)
