"""Bans: a banned user's turns are refused before anything is sent or stored."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import Ban
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.errors import NotAuthorized
from core.domain.types import ChatUser, IncomingMessage


class BanGuard:
    """A TurnGuard reading the ``bans`` table (one indexed lookup per turn); expired bans no longer apply."""

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        await self.refuse_if_banned(message.user)
        return message

    async def refuse_if_banned(self, user: ChatUser) -> None:
        """Raise NotAuthorized with the ban's message when ``user`` is banned (turns and `/ai` commands)."""
        async with self._db.reader() as session:
            ban = (
                await session.execute(
                    select(Ban).where(Ban.platform == user.platform, Ban.user_id == user.user_id)
                )
            ).scalar_one_or_none()
        if ban is None or (ban.expires_at is not None and ban.expires_at <= self._clock()):
            return
        until = f" until {ban.expires_at:%Y-%m-%d %H:%M} UTC" if ban.expires_at else ""
        reason = f" Reason: {ban.reason}" if ban.reason else ""
        raise NotAuthorized(f"You can't use this assistant{until}: an admin has blocked you.{reason}")
