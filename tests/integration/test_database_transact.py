"""``Database.transact``/``read`` on a SQLite file run every transaction on one kept connection: a transaction
that fails (the write lock held by another process, a constraint, an error in the work) leaves nothing behind
for the next one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from core.db.session import Database


async def test_failed_transactions_leave_the_kept_connection_usable(tmp_path: Path) -> None:
    path = tmp_path / "kept.db"
    database = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        await database.transact(lambda c: c.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)")))
        await database.transact(lambda c: c.exec_driver_sql("PRAGMA busy_timeout=100"))

        other = sqlite3.connect(path, isolation_level=None)  # another process's writer (the admin CLI)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"):
            await database.transact(lambda c: c.execute(text("INSERT INTO t VALUES (1)")))
        other.execute("COMMIT")
        other.close()

        await database.transact(lambda c: c.execute(text("INSERT INTO t VALUES (2)")))
        with pytest.raises(IntegrityError):
            await database.transact(lambda c: c.execute(text("INSERT INTO t VALUES (2)")))

        def fails_midway(connection: Connection) -> None:
            connection.execute(text("INSERT INTO t VALUES (3)"))
            raise RuntimeError("the work failed")

        with pytest.raises(RuntimeError):
            await database.transact(fails_midway)

        await database.transact(lambda c: c.execute(text("INSERT INTO t VALUES (4)")))
        rows = await database.read(lambda c: c.execute(text("SELECT x FROM t ORDER BY x")).scalars().all())
        assert rows == [2, 4]  # the locked, duplicate and failed transactions wrote nothing
        # and the lock is not held between transactions: another writer gets it at once
        outside = sqlite3.connect(path, isolation_level=None, timeout=0)
        outside.execute("BEGIN IMMEDIATE")
        outside.execute("ROLLBACK")
        outside.close()
    finally:
        await database.close()
