"""setting_changes: one row counting changes of the settings every process caches (channel policies,
personas, bans, budget overrides), bumped in each change's transaction and read by every turn's claim, so that
a change made by another process reaches a SQLite service's next turn (no notices between processes there).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "setting_changes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("changes", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setting_changes")),
    )
    op.bulk_insert(table, [{"id": 1, "changes": 0}])


def downgrade() -> None:
    op.drop_table("setting_changes")
