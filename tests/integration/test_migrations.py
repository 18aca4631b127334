"""Alembic is the only way the schema is made: upgrade an empty database, downgrade it cleanly."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from core.db import (
    migrate,
    models,  # noqa: F401
)
from core.db.base import Base
from core.db.session import Database

EXPECTED = {
    "conversations",
    "replicas",
    "messages",
    "attachments",
    "processed_events",
    "usage_records",
    "budgets",
    "reservations",
    "budget_counters",
    "bans",
    "moderation_events",
    "admin_actions",
    "channel_policies",
    "tool_calls",
    "installations",
    "oauth_states",
    "conversation_summaries",
    "personas",
    "tool_approvals",
    "answer_feedback",
    "setting_changes",
}


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_creates_the_schema_and_downgrade_removes_it(database_url: str) -> None:
    database = Database.from_url(database_url)
    async with database.engine.connect() as connection:
        assert await connection.run_sync(tables) == set()
    await migrate.upgrade(database.engine)
    assert await migrate.current_revision(database.engine) == migrate.head_revision()
    async with database.engine.connect() as connection:
        assert await connection.run_sync(tables) == EXPECTED | {"alembic_version"}
    # Upgrading again is a no-op (serve and chat migrate on every start).
    await migrate.upgrade(database.engine)
    await migrate.downgrade(database.engine, "base")
    async with database.engine.connect() as connection:
        assert await connection.run_sync(tables) <= {"alembic_version"}
    assert await migrate.current_revision(database.engine) is None
    await database.close()


async def test_migrations_match_the_models(database_url: str) -> None:
    """No model change without a migration: autogenerate finds nothing to do on a migrated database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    database = Database.from_url(database_url)
    await migrate.upgrade(database.engine)

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    await database.close()


async def test_started_by_is_backfilled_from_the_first_user_message(database_url: str) -> None:
    """0004 adds conversations.started_by and fills it for existing conversations (issue 13)."""
    from sqlalchemy import text

    database = Database.from_url(database_url)
    await migrate.upgrade(database.engine, "0003")
    message = (
        "INSERT INTO messages (conversation_id, role, content, token_count, token_encoding, status, user_id,"
        " created_at) VALUES (:c, :role, '[]', 1, 'o200k_base', 'ok', :user, CURRENT_TIMESTAMP)"
    )
    async with database.engine.begin() as connection:
        for conversation in (1, 2):
            await connection.execute(
                text(
                    "INSERT INTO conversations (id, platform, workspace_id, channel_id, thread_id,"
                    " history_version, created_at, updated_at)"
                    " VALUES (:c, 'slack', 'T1', 'C1', :t, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"c": conversation, "t": f"17000000{conversation}.0"},
            )
        for role, user in (("assistant", None), ("user", "U0ADA"), ("user", "U0BOB")):
            await connection.execute(text(message), {"c": 1, "role": role, "user": user})
    await migrate.upgrade(database.engine)
    async with database.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, started_by FROM conversations ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [(1, "U0ADA"), (2, None)]
    await migrate.downgrade(database.engine, "0003")
    await database.close()


async def test_a_restart_at_head_is_recognised_and_a_database_behind_is_not(database_url: str) -> None:
    """serve, chat and admin migrate on every start: at head that is one query, without Alembic (issue 14)."""
    database = Database.from_url(database_url)
    assert not await migrate.at_head(database.engine)  # no alembic_version table yet
    await migrate.upgrade(database.engine, "0003")
    assert not await migrate.at_head(database.engine)
    await migrate.upgrade(database.engine)
    assert await migrate.at_head(database.engine)
    assert await migrate.current_revision(database.engine) == migrate.head_revision()
    await migrate.downgrade(database.engine, "base")
    await database.close()


def test_the_quick_check_reads_the_same_head_as_alembic() -> None:
    from importlib import resources
    from pathlib import Path

    from alembic.script import ScriptDirectory

    versions = Path(str(resources.files("migrations"))) / "versions"
    alembic_head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert migrate.script_heads(versions) == {alembic_head}
    assert migrate.head_revision() == alembic_head


async def test_the_stored_revisions_are_read_without_alembic(database_url: str) -> None:
    database = Database.from_url(database_url)
    assert await migrate.stored_revisions(database.engine) == frozenset()  # never migrated
    await migrate.upgrade(database.engine, "0003")
    assert await migrate.stored_revisions(database.engine) == {"0003"}
    await migrate.upgrade(database.engine)
    assert await migrate.stored_revisions(database.engine) == {migrate.head_revision()}
    await migrate.downgrade(database.engine, "base")
    assert await migrate.stored_revisions(database.engine) == frozenset()
    await database.close()
