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


class StopChannel:
    """Stops that reach every replica: local first; otherwise, on PostgreSQL, a NOTIFY that the replica
    running the turn hears on its listening connection (``listening``, held while the service runs)."""

    def __init__(self, database: Database, running: RunningTurns) -> None:
        self._db = database
        self.running = running

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
    async def listening(self) -> AsyncIterator[None]:
        """On PostgreSQL: LISTEN on a dedicated connection inside the block (nothing on SQLite)."""
        if self._db.is_sqlite:
            yield
            return
        async with self._db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg's connection

            def on_notify(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
                self.heard(payload)

            await driver.add_listener(CHANNEL, on_notify)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(driver.remove_listener(CHANNEL, on_notify))
