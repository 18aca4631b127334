"""Bans: a banned user's turns are refused before anything is sent or stored.

A turn's ban is read with its place in the conversation's queue (the claim's one SELECT; the pipeline hands
it over with ``known_ban``), so a ban an admin placed on any replica applies to the next turn at no extra
statement. The adapters' earlier check (``GuardChain.admit``, before a download or a platform call) and
commands (``refuse_if_banned``) read the ``bans`` table through a per-replica cache (``ReplicaCache``): a
ban or unban, on any replica, sends a ``ban`` notice in its transaction (``ban_changed``) and every replica
drops that user's entry at once; all entries go when the listening connection (re)opens or a turn's claim
finds the count of setting changes moved (a ban made by another process, on SQLite: the events after that
turn), and none is trusted for more than 60 s. The claim's read stays the authoritative one: a ban applies
to the next turn even where a notice was missed."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Ban
from core.db.notice_board import Notice
from core.db.notices import Notices
from core.db.replica_cache import SAFETY_TTL, ReplicaCache
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.errors import NotAuthorized
from core.domain.ports import UserBan
from core.domain.types import ChatUser, IncomingMessage


class _Unread:
    pass


_UNREAD: Final = _Unread()
_FRESH: Final = _Unread()  # read from the database, not the cache
_known: ContextVar[UserBan | _Unread | None] = ContextVar("threadwise_known_ban", default=_UNREAD)


@contextmanager
def fresh_bans() -> Iterator[None]:
    """Outside a turn, for what costs money or acts for the user without a claim to read the ban (the prompt
    of ``/ai image``): the ban check reads the ``bans`` table, not this replica's cache."""
    token = _known.set(_FRESH)
    try:
        yield
    finally:
        _known.reset(token)


@contextmanager
def known_ban(ban: UserBan | None, *, read: bool = True) -> Iterator[None]:
    """In a turn: its sender's ban as the claim read it (None: not banned), which the turn's ban check
    uses; ``read=False``: the check reads the ``bans`` table itself."""
    token = _known.set(ban if read else _UNREAD)
    try:
        yield
    finally:
        _known.reset(token)


class BanGuard:
    """A TurnGuard on the ``bans`` table; expired bans no longer apply."""

    def __init__(self, database: Database, *, clock: Clock = utc_now, ttl: float = SAFETY_TTL) -> None:
        self._db = database
        self._clock = clock
        self._cache: ReplicaCache[tuple[str, str], UserBan | None] = ReplicaCache(ttl=ttl)
        database.board.subscribe("ban", self._changed)
        database.board.on_start_over(self._cache.clear)

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        known = _known.get()
        if isinstance(known, _Unread):  # before a turn (admission), or a store that did not read it
            await self.refuse_if_banned(message.user, fresh=known is _FRESH)
        else:
            self._refuse(known)
        return message

    async def refuse_if_banned(self, user: ChatUser, *, fresh: bool = False) -> None:
        """Raise NotAuthorized with the ban's message when ``user`` is banned (turns and `/ai` commands);
        ``fresh``: read from the database whatever the cache holds (and keep what was read)."""
        key = (user.platform, user.user_id)
        found, ban = (False, None) if fresh else self._cache.get(key)
        if not found:
            generation = self._cache.generation
            async with self._db.reading() as connection:
                parameters = {"b_platform": user.platform, "b_user": user.user_id}
                row = (await connection.execute(_ban_of(), parameters)).one_or_none()
            ban = UserBan(row.reason, row.expires_at) if row is not None else None
            self._cache.put(key, ban, generation)
        self._refuse(ban)

    def _changed(self, notice: Notice) -> None:
        platform, user_id = notice["user"]
        self._cache.drop((str(platform), str(user_id)))

    def _refuse(self, ban: UserBan | None) -> None:
        if ban is None or (ban.expires_at is not None and ban.expires_at <= self._clock()):
            return
        until = f" until {ban.expires_at:%Y-%m-%d %H:%M} UTC" if ban.expires_at else ""
        reason = f" Reason: {ban.reason}" if ban.reason else ""
        raise NotAuthorized(f"You can't use this assistant{until}: an admin has blocked you.{reason}")


@functools.cache
def _ban_of() -> Any:
    """A user's ban (reason, expiry), a statement built once: every event's admission runs it."""
    bans = cast(Table, Ban.__table__)
    return select(bans.c.reason, bans.c.expires_at).where(
        bans.c.platform == bindparam("b_platform"), bans.c.user_id == bindparam("b_user")
    )


async def ban_changed(database: Database, session: AsyncSession, platform: str, user_id: str) -> None:
    """In the transaction that bans or unbans a user: every replica's ban cache forgets that user when it
    commits."""
    await Notices(database).publish("ban", {"user": [platform, user_id]}, session)
