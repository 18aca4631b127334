"""Run Alembic migrations programmatically on an open async engine (the only way the schema is created).

A database already at the newest revision is recognised with one query and without loading Alembic (a
restart's common case); anything else, or anything the quick check cannot read, goes through Alembic. The
head revision and the database's revisions are read the same way for readiness (``head_revision``,
``stored_revisions``), so a running service at head never loads Alembic.

Replicas that start together all migrate: on PostgreSQL each run holds a transaction-scoped advisory lock
(``MIGRATION_LOCK``) around Alembic, so one applies the new revisions and the others wait, then find the
schema at head and do nothing. SQLite needs nothing more: the upgrade's write transaction serialises them.
"""

from __future__ import annotations

import ast
import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine


# pg_advisory_xact_lock key of the migration runner (any bigint no other lock of ours uses): "twmigrat"
MIGRATION_LOCK = int.from_bytes(b"twmigrat", "big") >> 1


def _location() -> Path:
    return Path(str(resources.files("migrations")))


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_location()))
    config.set_main_option("path_separator", "os")
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and await at_head(engine):
        return
    from alembic import command

    await _run(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    await _run(engine, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


async def stored_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revisions in the database's ``alembic_version`` table, read with one plain query (no Alembic);
    empty when the table is not there (a database never migrated)."""
    async with engine.connect() as connection:
        if not await connection.run_sync(lambda sync: sync.dialect.has_table(sync, "alembic_version")):
            return frozenset()
        stored = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars()
        return frozenset(stored)


def head_revision() -> str | None:
    """The newest revision the scripts declare: read from their source when they declare it as plain
    literals with one head (no Alembic), else as Alembic sees it."""
    heads = shipped_heads()
    if heads is not None and len(heads) == 1:
        return next(iter(heads))
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this version ships (read once per process)."""
    from alembic.script import ScriptDirectory

    return frozenset(
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    )


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database's revisions are exactly the scripts' heads (False when either cannot be read)."""
    heads = shipped_heads()
    if not heads:
        return False
    try:
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            return set(stored) == heads
    except SQLAlchemyError:  # no alembic_version table: a new database
        return False


@functools.cache
def shipped_heads() -> frozenset[str] | None:
    """``script_heads`` of the scripts this version ships, read once per process (they ship with the code)."""
    return script_heads(_location() / "versions")


def script_heads(versions: Path) -> frozenset[str] | None:
    """The head revisions of the migration scripts in ``versions``, read from their source as literals; None
    when a script does not declare ``revision`` and ``down_revision`` as plain literals, or uses branch labels
    or dependencies (Alembic decides then)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name == "__init__.py":
            continue
        declared = _declarations(path)
        revision, down = declared.get("revision"), declared.get("down_revision")
        if not isinstance(revision, str) or declared.get("branch_labels") or declared.get("depends_on"):
            return None
        if isinstance(down, str):
            revised.add(down)
        elif isinstance(down, tuple) and all(isinstance(parent, str) for parent in down):
            revised.update(down)
        elif down is not None or "down_revision" not in declared:
            return None
        revisions.add(revision)
    return frozenset(revisions - revised) or None


def _declarations(path: Path) -> dict[str, object]:
    """Module-level ``name = <literal>`` assignments of a script (a value that is no literal: ``...``)."""
    found: dict[str, object] = {}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return found
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                found[target.id] = ...
    return found


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
