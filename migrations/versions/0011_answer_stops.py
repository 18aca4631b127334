"""processed_events.stopped_by: a Stop clicked on another replica than the one running the answer is kept
with the answer's claim, so that a replica whose listening connection was down when the stop notice went out
finds it when it listens again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stopped_by", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_column("stopped_by")
