"""Is the database there, and is its schema the one this version needs? For `/readyz` and `threadwise doctor`.

Each function returns ``None`` when all is well, else one line saying what is wrong and how to fix it; a
database that does not answer raises (callers bound them with a timeout).
"""

from __future__ import annotations

from sqlalchemy import text

from core.db import migrate
from core.db.session import Database


async def ping(database: Database) -> None:
    """``SELECT 1`` on a connection of the pool (a new one if the pool has none)."""
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def schema_gap(database: Database, head: str | None) -> str | None:
    """What separates the database's schema from ``head`` (``migrate.head_revision()``), or None. One plain
    query when all is well (no Alembic: /readyz asks this often)."""
    stored = await migrate.stored_revisions(database.engine)
    if stored == {head}:
        return None
    if not stored:
        return f"the database has no schema yet (needs {head}): run `threadwise migrate`"
    if len(stored) > 1:
        return (
            f"the database has several heads ({', '.join(sorted(stored))}), this version needs {head}: "
            "run `threadwise migrate`"
        )
    [current] = stored
    if current not in migrate.known_revisions():
        return (
            f"the database is at revision {current}, which this version does not know (newer code migrated "
            "it): run the newer version, or downgrade the database with the version that migrated it"
        )
    return f"the database is at revision {current}, this version needs {head}: run `threadwise migrate`"
