"""Stopping a running turn: this process's running turns by claim id (``RunningTurns``), and on PostgreSQL a
``stop`` notice (core/db/notices.py) so that a Stop clicked on one replica reaches the replica running the
turn at once. SQLite is one process: the local registry is all there is. Nothing here runs per turn beyond a
dict entry; the listening connection is the replica's one for every notice, held while it serves."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from core.db.notices import Notice, Notices
from core.db.session import Database
from core.turn.stopping import RunningTurns, StopSignal

__all__ = ["RunningTurns", "StopChannel", "StopSignal"]

log = logging.getLogger(__name__)


class StopChannel:
    """Stops that reach every replica: local first; otherwise, on PostgreSQL, a ``stop`` notice that the
    replica running the turn hears. ``notices``: the replica's (a channel of its own when None)."""

    def __init__(self, database: Database, running: RunningTurns, notices: Notices | None = None) -> None:
        self._notices = notices if notices is not None else Notices(database)
        self.running = running
        self._notices.subscribe("stop", self.heard)

    @property
    def connections(self) -> int:
        """Listening connections opened so far (more than one: it broke and came back)."""
        return self._notices.connections

    async def stop(self, claim_id: int, by: str) -> bool:
        """True when this process ran the turn and was told; else, on PostgreSQL, the other replicas are
        told (False); on SQLite nothing runs it any more (False)."""
        if self.running.stop(claim_id, by):
            return True
        if self._notices.is_shared:
            await self._notices.publish("stop", {"claim": claim_id, "by": by[:100]})
        return False

    def heard(self, notice: Notice) -> None:
        claim_id, by = notice["claim"], notice["by"]
        if not isinstance(claim_id, int) or not isinstance(by, str):
            raise TypeError("claim and by")
        if self.running.stop(claim_id, by):
            log.info("turn of claim %s stopped on request of another replica", claim_id)

    @contextlib.asynccontextmanager
    async def listening(self, check_every: float | None = None) -> AsyncIterator[None]:
        """The replica's notices, heard inside the block (``Notices.listening``); nothing on SQLite."""
        held = self._notices.listening() if check_every is None else self._notices.listening(check_every)
        async with held:
            yield
