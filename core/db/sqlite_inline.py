"""An aiosqlite-compatible connection that runs SQLite calls inline, on the event loop's thread.

aiosqlite sends every call to a worker thread and back; each round trip costs two thread wake-ups (measured
at about 0.5 ms on the project's 2-core machines, ~1 ms per statement), while the SQLite call itself takes
microseconds. A turn issues about 20 statements, so the hops were most of its database time. SQLAlchemy's
aiosqlite dialect accepts any object with aiosqlite's shape through ``async_creator``; this one performs the
call at once and returns.

Why blocking the loop is fine here: statements of one transaction run back to back with no real suspension
in between (the core awaits nothing else inside a unit of work), so within one process a writer never waits
for another; WAL readers never wait at all. Only another process holding the write lock (``threadwise
admin`` against the same file) can make a call wait, for at most the busy timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class _RunNow:
    """Stands in for aiosqlite's request queue (SQLAlchemy uses it to set isolation_level): runs at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:
            future.set_exception(error)


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(
        self, sql: str, parameters: Iterable[Sequence[Any] | dict[str, Any]]
    ) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """The parts of ``aiosqlite.Connection`` SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @classmethod
    def open(cls, database: str, *, timeout: float) -> InlineConnection:
        # check_same_thread off: the pool may hand the connection to the loop from another thread at shutdown.
        return cls(sqlite3.connect(database, timeout=timeout, isolation_level=None, check_same_thread=False))

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)
