"""Stopping a running turn: this process's running turns by claim id (``RunningTurns``), and on PostgreSQL a
``LISTEN/NOTIFY`` channel (``StopChannel``) so that a Stop clicked on one replica reaches the replica running
the turn at once. SQLite is one process: the local registry is all there is. Nothing here runs per turn
beyond a dict entry; the listening connection is one per replica, held while it serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select

from core.db.session import Database
from core.turn.stopping import RunningTurns, StopSignal

__all__ = ["CHANNEL", "RunningTurns", "StopChannel", "StopSignal"]

log = logging.getLogger(__name__)

CHANNEL = "threadwise_stop"  # the NOTIFY channel every replica listens on
CHECK_EVERY = 30.0  # seconds between checks that the listening connection is alive
RETRY_AFTER = 2.0  # seconds before listening again after the connection broke


class StopChannel:
    """Stops that reach every replica: local first; otherwise, on PostgreSQL, a NOTIFY that the replica
    running the turn hears on its listening connection (``listening``, held while the service runs)."""

    def __init__(self, database: Database, running: RunningTurns) -> None:
        self._db = database
        self.running = running
        self.connections = 0  # listening connections opened so far (more than one: it broke and came back)

    async def stop(self, claim_id: int, by: str) -> bool:
        """True when this process ran the turn and was told; else, on PostgreSQL, the other replicas are
        told (False); on SQLite nothing runs it any more (False)."""
        if self.running.stop(claim_id, by):
            return True
        if not self._db.is_sqlite:
            payload = json.dumps({"claim": claim_id, "by": by})
            async with self._db.unit_of_work() as session:
                await session.execute(select(func.pg_notify(CHANNEL, payload)))
        return False

    def heard(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            claim_id, by = int(data["claim"]), str(data["by"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed stop notification")
            return
        if self.running.stop(claim_id, by):
            log.info("turn of claim %s stopped on request of another replica", claim_id)

    @contextlib.asynccontextmanager
    async def listening(self, check_every: float = CHECK_EVERY) -> AsyncIterator[None]:
        """On PostgreSQL: LISTEN on a dedicated connection inside the block, checked every ``check_every``
        seconds and opened again should it break (a database restart); nothing on SQLite."""
        if self._db.is_sqlite:
            yield
            return
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen(ready, check_every), name="stop notifications")
        waiting = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait((task, waiting), return_when="FIRST_COMPLETED")
            yield
        finally:
            waiting.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, ready: asyncio.Event, check_every: float) -> None:
        def on_notify(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            self.heard(payload)

        while True:
            try:
                async with self._db.engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver: Any = raw.driver_connection  # asyncpg's connection
                    await driver.add_listener(CHANNEL, on_notify)
                    self.connections += 1
                    ready.set()
                    while True:
                        await asyncio.sleep(check_every)
                        await driver.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection broke: listen again on a new one
                log.warning("stop notifications: %s; listening again", type(exc).__name__)
                ready.set()  # serving does not wait for the database to come back
                await asyncio.sleep(RETRY_AFTER)
