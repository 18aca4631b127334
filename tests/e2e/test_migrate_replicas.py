"""Replicas starting together on one fresh PostgreSQL: every `threadwise migrate` waits for the migration
lock, all succeed, and each revision is applied once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from core.db import migrate
from core.db.session import create_engine
from tests.conftest import postgres_url, reset_postgres

WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((classid::bigint << 32) | objid::bigint) = :key"
)


async def test_two_replicas_migrating_at_once_both_succeed_and_migrate_once(run_cli) -> None:  # type: ignore[no-untyped-def]
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    await reset_postgres(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as holder:
            # Hold the runner's lock, so both replicas are started and stopped at the same point.
            await holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrate.MIGRATION_LOCK})
            await holder.commit()
            env = {"DATABASE_URL": url}
            runs = [asyncio.create_task(run_cli("migrate", env=env)) for _ in range(2)]
            waiting = 0
            async with asyncio.timeout(45):
                while waiting < 2:
                    assert not any(run.done() for run in runs), "a replica migrated without waiting its turn"
                    await asyncio.sleep(0.05)
                    waiting = (await holder.execute(WAITING, {"key": migrate.MIGRATION_LOCK})).scalar_one()
                    await holder.commit()
            await holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrate.MIGRATION_LOCK})
            await holder.commit()
        results = await asyncio.gather(*runs)
        for result in results:
            assert result.code == 0, result.err
            assert f"database at revision {migrate.head_revision()}" in result.out
        async with engine.connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [row[0] for row in versions] == [migrate.head_revision()]
    finally:
        await engine.dispose()
