"""Shared fixtures: the real o200k_base tables, a migrated database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), and the OpenAI wire fake."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import migrate
from core.db.session import Database, create_engine
from tests.fakes.openai_api import FakeOpenAI

SHARED_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken"


@pytest.fixture(scope="session", autouse=True)
def tiktoken_cache() -> Iterator[str]:
    """Point tiktoken at the offline cache of real encoding tables (tests never download)."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not configured:
        if not SHARED_TIKTOKEN.is_dir():
            pytest.exit("no tiktoken cache: set TIKTOKEN_CACHE_DIR (see README, Tests)", returncode=3)
        os.environ["TIKTOKEN_CACHE_DIR"] = configured = str(SHARED_TIKTOKEN)
    yield configured


def postgres_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


async def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables): SQLite in a temp dir, or the PostgreSQL of TEST_DATABASE_URL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / f'tw-{uuid.uuid4().hex[:6]}.db'}"
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    await reset_postgres(url)
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database."""
    db = Database.from_url(database_url)
    await migrate.upgrade(db.engine)
    yield db
    await db.close()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="test-key") as fake:
        yield fake
