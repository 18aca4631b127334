"""Async engine and session factories for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import greenlet_spawn

from core.db.notice_board import NoticeBoard
from core.db.sqlite_inline import InlineConnection

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000
POOL_SIZE = 16  # SQLite connections kept open (SQLAlchemy's default is 5)
POOL_OVERFLOW = 16  # further ones opened, and closed when returned, while more transactions run at once


def create_engine(url: str, *, echo: bool = False, begins: bool = True) -> AsyncEngine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and explicit transactions
    (``begins``: the engine emits BEGIN itself, as an execution option says; without, its user does)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    memory = parsed.database in (None, "", ":memory:")
    path = ":memory:" if memory else str(parsed.database)

    async def connect() -> Any:
        return InlineConnection.open(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    # As many pooled connections as turns commonly run at once: a connection beyond the pool is opened (file
    # open, PRAGMAs) and closed again for every transaction that needs it.
    pool: dict[str, Any] = {} if memory else {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if not begins:
        pool = {"pool_size": 2, "max_overflow": 2}  # ``Database``'s two kept connections
    engine = create_async_engine(url, echo=echo, async_creator=connect, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions defer it past reads).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if not begins:
        return engine

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock up front: a deferred transaction that reads, then writes after another
        # writer committed fails at once with SQLITE_BUSY instead of waiting for the busy timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode != "NONE":  # readers run each SELECT on its own (WAL snapshot per statement)
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """Owns one engine and hands out sessions: ``reader()`` for reads (never writes; on SQLite without a
    transaction, saving a round trip per read), ``unit_of_work()`` for one write transaction; the same on a
    Core connection (``reading()``, ``transaction()``), and as synchronous Core work run in one greenlet
    (``read()``, ``transact()``: a turn's hot path)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        reader_bind = engine.execution_options(sqlite_begin="NONE") if self.is_sqlite else engine
        self._read = async_sessionmaker(reader_bind, expire_on_commit=False, autoflush=False)
        writer_bind = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        self._write = async_sessionmaker(writer_bind, expire_on_commit=False, autoflush=False)
        self._read_bind, self._write_bind = reader_bind, writer_bind
        self.board = NoticeBoard()  # this process's subscribers to the database's notices
        # A SQLite file's ``transact``/``read`` work never waits for anything (the calls run inline on this
        # thread), so no two of them interleave: each kind keeps one connection for all of them, from an
        # engine of their own that emits no events (the BEGIN is theirs), so that SQLAlchemy dispatches none
        # per statement.
        self._kept: dict[str, Connection] = {}
        self.hot_engine: AsyncEngine | None = None
        if self.is_sqlite and engine.url.database not in (None, "", ":memory:"):
            self.hot_engine = create_engine(engine.url.render_as_string(hide_password=False), begins=False)

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine this database runs statements on (for listeners: the hot path's own on SQLite)."""
        return (self.engine,) if self.hot_engine is None else (self.engine, self.hot_engine)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(create_engine(url))

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends normally, rolled back on any exception."""
        async with self._write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """``unit_of_work()`` on a Core connection, for statements that need no ORM object (a turn's hot
        path: no Session, identity map or flush): BEGIN IMMEDIATE on SQLite, committed when the block ends
        normally, rolled back on any exception."""
        async with self._write_bind.begin() as connection:
            yield connection

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """``reader()`` on a Core connection (never writes; on SQLite each SELECT on its own)."""
        async with self._read_bind.connect() as connection:
            yield connection

    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (synchronous Core statements on a Connection) as one write transaction, connection,
        BEGIN (IMMEDIATE on SQLite), statements and COMMIT in a single greenlet: an ``AsyncConnection``
        switches greenlets for each of those steps, which cost a turn's hot path more CPU than SQLite's own
        work. Rolled back when ``work`` raises."""
        if self.hot_engine is not None:
            return await self._on_kept(self.hot_engine, "write", work)
        engine = self._write_bind.sync_engine

        def transaction() -> T:
            with engine.begin() as connection:
                return work(connection)

        result: T = await greenlet_spawn(transaction)
        return result

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``transact`` for reads: ``reader()``'s connection (on SQLite each SELECT on its own)."""
        if self.hot_engine is not None:
            return await self._on_kept(self.hot_engine, "read", work)
        engine = self._read_bind.sync_engine

        def reading() -> T:
            with engine.connect() as connection:
                return work(connection)

        result: T = await greenlet_spawn(reading)
        return result

    async def _on_kept(self, hot: AsyncEngine, kind: str, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction on the connection of ``hot`` kept for ``kind`` (SQLite file only): no
        pool checkout, Connection set-up and reset per transaction, which cost a turn more than the
        statements. A connection that failed is given up (the next transaction opens another)."""

        def run() -> T:
            connection = self._kept.get(kind)
            if connection is None or connection.closed or connection.invalidated:
                connection = self._kept[kind] = hot.sync_engine.connect()
            try:
                if kind == "write":  # the write lock up front, as unit_of_work() takes it
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                result = work(connection)
                connection.commit()
                return result
            except BaseException:
                if connection.invalidated:
                    self._kept.pop(kind, None)
                    connection.close()
                else:
                    connection.rollback()
                raise

        result: T = await greenlet_spawn(run)
        return result

    async def close(self) -> None:
        kept, self._kept = list(self._kept.values()), {}
        for connection in kept:
            await greenlet_spawn(connection.close)
        if self.hot_engine is not None:
            await self.hot_engine.dispose()
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
