"""Shared fixtures: tiktoken's real tables (tests of exact counts are marked ``needs_token_tables`` and skip,
saying why, where the tables cannot be loaded), a migrated database (SQLite, and PostgreSQL when
TEST_DATABASE_URL is set), and the OpenAI wire fake."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import migrate
from core.db.session import Database, create_engine
from tests.fakes.openai_api import FakeOpenAI

SHARED_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken"
TOKEN_TABLES = ("o200k_base", "cl100k_base")  # what the exact-count tests compare against
NO_TABLES = "no tiktoken tables here (offline, empty cache; set TIKTOKEN_CACHE_DIR to load them)"


_TABLES_MISSING = pytest.StashKey[str | None]()  # why the tables cannot be loaded (None: loaded)


def _load_token_tables() -> str | None:
    """Loads tiktoken's tables once; returns why they cannot be had here, or None when they are loaded.

    Where from: TIKTOKEN_CACHE_DIR, else ``../shared/tiktoken`` when this checkout has one, else tiktoken's
    own per-user cache (which it fills from the network when it can).
    """
    import tiktoken

    for name in TOKEN_TABLES:
        try:
            tiktoken.get_encoding(name)
        except Exception as exc:  # network, cache or hash failure: all mean "no tables here"
            return f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_token_tables(why): an exact-count test; skipped, saying why, where tiktoken's tables cannot "
        "be loaded (offline, no cache); every other test runs",
    )
    explicit = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not explicit and SHARED_TIKTOKEN.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = explicit = str(SHARED_TIKTOKEN)
    problem = _load_token_tables()
    if problem is not None and explicit:
        # A cache was named (CI, this workspace) and does not hold the tables: that is a broken setup, not an
        # offline clone, so nothing is skipped quietly.
        pytest.exit(
            f"TIKTOKEN_CACHE_DIR={explicit} does not hold tiktoken's tables ({problem})", returncode=3
        )
    config.stash[_TABLES_MISSING] = problem


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("needs_token_tables")
    if marker is None or item.config.stash.get(_TABLES_MISSING, None) is None:
        return
    why = marker.args[0] if marker.args else "compares exact token counts"
    pytest.skip(f"{why}: {NO_TABLES}")


@pytest.fixture(scope="session")
def tiktoken_cache() -> str | None:
    """The folder tiktoken reads its tables from (None: its default per-user cache)."""
    return os.environ.get("TIKTOKEN_CACHE_DIR")


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
