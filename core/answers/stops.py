"""Stopping a running turn: this process's running turns by claim id (``RunningTurns``), and on PostgreSQL a
``stop`` notice (core/db/notices.py) so that a Stop clicked on one replica reaches the replica running the
turn at once. SQLite is one process: the local registry is all there is. Nothing here runs per turn beyond a
dict entry; the listening connection is the replica's one for every notice, held while it serves.

A notice sent while a replica's listening connection is down (a database restart, a network blip: it
listens again within about 30 s) is lost for that replica, so a stop that goes to other replicas is also kept
with the answer's claim (``processed_events.stopped_by``); whenever a replica listens (again), it looks for
stops kept for turns still running and stops those it runs. Such a stop is late, not lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import select, update

from core.db.models import ProcessedEvent
from core.db.notices import Notice, Notices
from core.db.session import Database
from core.turn.stopping import RunningTurns, StopSignal

__all__ = ["RunningTurns", "StopChannel", "StopSignal"]

log = logging.getLogger(__name__)

BY_LIMIT = 100  # characters of the stopper's name kept and sent (processed_events.stopped_by)


class StopChannel:
    """Stops that reach every replica: local first; otherwise, on PostgreSQL, a ``stop`` notice that the
    replica running the turn hears, and the stop kept with the claim for a replica that was not listening.
    ``notices``: the replica's (a channel of its own when None)."""

    def __init__(self, database: Database, running: RunningTurns, notices: Notices | None = None) -> None:
        self._db = database
        self._notices = notices if notices is not None else Notices(database)
        self.running = running
        self._catching_up: set[asyncio.Task[None]] = set()
        self._notices.subscribe("stop", self.heard)
        self._notices.on_listening(self._listening_again)

    @property
    def connections(self) -> int:
        """Listening connections opened so far (more than one: it broke and came back)."""
        return self._notices.connections

    async def stop(self, claim_id: int, by: str) -> bool:
        """True when this process ran the turn and was told; else, on PostgreSQL, the stop is kept with the
        claim and the other replicas are told (False); on SQLite nothing runs it any more (False)."""
        if self.running.stop(claim_id, by):
            return True
        if self._notices.is_shared:
            async with self._db.unit_of_work() as session:
                await session.execute(
                    update(ProcessedEvent)
                    .where(ProcessedEvent.id == claim_id, ProcessedEvent.status == "claimed")
                    .values(stopped_by=by[:BY_LIMIT])
                )
                await self._notices.publish("stop", {"claim": claim_id, "by": by[:BY_LIMIT]}, session)
        return False

    def heard(self, notice: Notice) -> None:
        claim_id, by = notice["claim"], notice["by"]
        if not isinstance(claim_id, int) or not isinstance(by, str):
            raise TypeError("claim and by")
        if self.running.stop(claim_id, by):
            log.info("turn of claim %s stopped on request of another replica", claim_id)

    async def catch_up(self) -> int:
        """Stop the turns this process runs whose stop was kept (clicked on another replica while this one
        may not have been listening); how many it stopped."""
        async with self._db.reader() as session:
            kept = await session.execute(
                select(ProcessedEvent.id, ProcessedEvent.stopped_by).where(
                    ProcessedEvent.status == "claimed", ProcessedEvent.stopped_by.is_not(None)
                )
            )
            rows = kept.all()
        stopped = 0
        for claim_id, by in rows:
            if self.running.stop(int(claim_id), str(by)):
                stopped += 1
                log.info(
                    "turn of claim %s stopped on a request made while this replica was not listening",
                    claim_id,
                )
        return stopped

    def _listening_again(self) -> None:
        """The listening connection (re)opened: stops sent while it was down are looked for."""
        task = asyncio.get_running_loop().create_task(self._catch_up_logged(), name="stops missed")
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    async def _catch_up_logged(self) -> None:
        try:
            await self.catch_up()
        except Exception:
            log.exception("could not look for stops sent while this replica was not listening")

    @contextlib.asynccontextmanager
    async def listening(self, check_every: float | None = None) -> AsyncIterator[None]:
        """The replica's notices, heard inside the block (``Notices.listening``); nothing on SQLite."""
        held = self._notices.listening() if check_every is None else self._notices.listening(check_every)
        async with held:
            yield
