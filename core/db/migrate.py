"""Run Alembic migrations programmatically on an open async engine (the only way the schema is created).

Replicas that start together all migrate: on PostgreSQL each run holds a transaction-scoped advisory lock
(``MIGRATION_LOCK``) around Alembic, so one applies the new revisions and the others wait, then find the
schema at head and do nothing. SQLite needs nothing more: the upgrade's write transaction serialises them.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# pg_advisory_xact_lock key of the migration runner (any bigint no other lock of ours uses): "twmigrat"
MIGRATION_LOCK = int.from_bytes(b"twmigrat", "big") >> 1


def alembic_config() -> Config:
    location = Path(str(resources.files("migrations")))
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("path_separator", "os")
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this version ships (read once per process)."""
    return frozenset(
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    )


async def _run(engine: AsyncEngine, action: object) -> None:
    assert callable(action)

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        action(config)

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # held until this transaction ends (commit or rollback)
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await connection.run_sync(run)
