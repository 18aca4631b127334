"""Crash recovery: every running process (replica) beats a heartbeat into the database; turns claimed by a
replica that stopped beating are resolved by whichever replica notices first.

A turn's claim names its replica (``processed_events.owner``) and, once a message of its reply is posted,
where that message is (``processed_events.reply``). A replica that dies mid-turn (SIGKILL, OOM, a lost
host) leaves the claim unfinished: its conversation's later turns wait behind it and its placeholder says
"Thinking…". ``Recovery.sweep`` finds such claims (owner's heartbeat older than ``stale``, or no owner at
all), shows ``INTERRUPTED_MESSAGE`` where the reply is (through the platform's ``ReplyResolver``) or, when
nothing was posted, in the conversation, marks the claim ``interrupted`` (once, whichever replica wins),
cancels a tool approval it waited for (a later click decides nothing) and releases the turn's budget hold.
Nothing of the turn is stored (it never reached its final transaction), so nothing is stored twice; the user
asks again. ``beating`` runs the heartbeat and the sweep while a process
serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, or_, select, update

from core.db.base import utcnow
from core.db.models import ProcessedEvent, Replica, ToolApproval
from core.db.repositories import insert_for
from core.db.session import Database
from core.domain.clock import Clock
from core.domain.errors import INTERRUPTED_MESSAGE
from core.domain.ports import ReplyResolver
from core.domain.types import ConversationKey

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 10.0  # seconds one platform call of a resolution may take
GIVE_UP_AFTER = timedelta(hours=1)  # a reply that cannot be reached for this long is marked resolved anyway
BATCH = 100


class HoldReleaser(Protocol):
    """Gives back the budget holds a turn's event still has (``Budgets.release_event``)."""

    async def release_event(self, event_id: str) -> int: ...


class Recovery:
    """The heartbeat of replica ``owner`` and the resolution of dead replicas' turns.

    ``exclusive``: the database serves one process at a time (SQLite), so at start every other owner's
    claim is already dead and is resolved at once instead of after ``stale``.
    """

    def __init__(
        self,
        database: Database,
        *,
        owner: str,
        holds: HoldReleaser | None = None,
        stale: timedelta = timedelta(seconds=30),
        clock: Clock = utcnow,
    ) -> None:
        self._db = database
        self.owner = owner
        self._holds = holds
        self._stale = stale
        self._clock = clock
        self._resolvers: dict[str, ReplyResolver] = {}

    def register(self, platform: str, resolver: ReplyResolver) -> None:
        """Turns of ``platform`` are resolved through ``resolver`` (an adapter registers itself when up)."""
        self._resolvers[platform] = resolver

    async def beat(self) -> None:
        now = self._clock()
        async with self._db.unit_of_work() as session:
            await session.execute(
                insert_for(session, Replica)
                .values(id=self.owner, started_at=now, heartbeat_at=now)
                .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
            )

    async def leave(self) -> None:
        """This replica stops: its row goes, so a claim it leaves behind is resolved at the next sweep."""
        async with self._db.unit_of_work() as session:
            await session.execute(delete(Replica).where(Replica.id == self.owner))

    async def sweep(self, *, exclusive: bool = False) -> int:
        """Resolve the claims of dead replicas on the platforms registered here; returns how many."""
        if not self._resolvers:
            return 0
        now = self._clock()
        live = select(Replica.id).where(Replica.heartbeat_at >= now - self._stale)
        dead = (
            or_(ProcessedEvent.owner.is_(None), ProcessedEvent.owner != self.owner)
            if exclusive
            else or_(ProcessedEvent.owner.is_(None), ProcessedEvent.owner.not_in(live))
        )
        async with self._db.reader() as session:
            orphans = list(
                (
                    await session.execute(
                        select(ProcessedEvent)
                        .where(
                            ProcessedEvent.status == "claimed",
                            ProcessedEvent.platform.in_(list(self._resolvers)),
                            dead,
                        )
                        .order_by(ProcessedEvent.id)
                        .limit(BATCH)
                    )
                ).scalars()
            )
        resolved = 0
        for orphan in orphans:
            resolved += await self._resolve(orphan)
        if resolved:
            log.warning("resolved %d turn(s) left unfinished by a stopped replica", resolved)
        return resolved

    async def _resolve(self, orphan: ProcessedEvent) -> int:
        resolver = self._resolvers[orphan.platform]
        key = None
        if orphan.workspace_id is not None and orphan.channel_id is not None and orphan.thread_id is not None:
            key = ConversationKey(orphan.platform, orphan.workspace_id, orphan.channel_id, orphan.thread_id)
        if key is not None or orphan.reply is not None:
            try:
                async with asyncio.timeout(RESOLVE_TIMEOUT):
                    await resolver.resolve(key or _NOWHERE, orphan.reply, INTERRUPTED_MESSAGE)
            except Exception as exc:  # the platform is unreachable now: try again at the next sweep
                if self._clock() - orphan.created_at < GIVE_UP_AFTER:
                    log.warning("could not resolve interrupted turn %s yet: %s", orphan.event_id, exc)
                    return 0
                log.warning("giving up showing interrupted turn %s: %s", orphan.event_id, exc)
        async with self._db.unit_of_work() as session:
            marked = await session.execute(
                update(ProcessedEvent)
                .where(
                    ProcessedEvent.id == orphan.id,
                    ProcessedEvent.status == "claimed",
                    ProcessedEvent.owner.is_(None)
                    if orphan.owner is None
                    else ProcessedEvent.owner == orphan.owner,
                )
                .values(status="interrupted", updated_at=utcnow())
            )
            if getattr(marked, "rowcount", 0):  # an approval it waited for: nothing waits for it any more
                await session.execute(
                    update(ToolApproval)
                    .where(
                        ToolApproval.platform == orphan.platform,
                        ToolApproval.event_id == orphan.event_id[:255],
                        ToolApproval.status == "pending",
                    )
                    .values(status="cancelled", decided_at=utcnow())
                )
        if not getattr(marked, "rowcount", 0):
            return 0  # another replica resolved it first
        if self._holds is not None:
            await self._holds.release_event(orphan.event_id)
        return 1


_NOWHERE = ConversationKey("", "", "", "")


@contextlib.asynccontextmanager
async def beating(recovery: Recovery, *, interval: float = 10.0) -> AsyncIterator[None]:
    """While the block runs: a heartbeat every ``interval`` seconds, each followed by a sweep (of the
    platforms registered by then). On exit, after the block (which drains the adapters' turns), the replica
    leaves, so what it could not finish is resolved at the next sweep of another replica or of its
    successor. The first sweep is the caller's, once its adapters have registered: ``recovery.sweep``."""
    await recovery.beat()
    task = asyncio.create_task(_beat_forever(recovery, interval), name="replica heartbeat")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await recovery.leave()
        except Exception as exc:
            log.warning("could not remove this replica's heartbeat: %s", exc)


async def _beat_forever(recovery: Recovery, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await recovery.beat()
        except Exception as exc:
            log.warning("could not record this replica's heartbeat: %s", exc)
            continue
        await sweep_now(recovery)


async def sweep_now(recovery: Recovery, *, exclusive: bool = False) -> None:
    """One sweep, its failure logged (the next heartbeat tries again)."""
    try:
        await recovery.sweep(exclusive=exclusive)
    except Exception:
        log.exception("could not look for interrupted turns")
