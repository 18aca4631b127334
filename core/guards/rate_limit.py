"""Per-user (and optionally per-channel) moving-window rate limits with the ``limits`` library.

Memory storage by default (per process); Redis storage when ``REDIS_URL`` is set, so replicas share windows.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from datetime import timedelta

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from core.domain.clock import humanize
from core.domain.errors import RateLimited
from core.domain.types import IncomingMessage


def rate_limit_storage(redis_url: str | None) -> Storage:
    if not redis_url:
        return MemoryStorage()
    scheme, _, rest = redis_url.partition("://")
    storage = storage_from_string(f"async+{scheme}://{rest}", implementation="redispy")
    assert isinstance(storage, Storage)
    return storage


REMEMBERED_EVENTS = 10_000  # verdicts kept per process, so one event is counted once


class RateLimitGuard:
    """A TurnGuard: refuses a turn when the user (or the channel) is over its limit, saying when to retry.

    One event counts once: the verdict on an ``event_id`` is remembered, so the admission check of an adapter
    (before it downloads files) and the turn's own check (or a redelivery) cost one hit, not two."""

    def __init__(self, storage: Storage, *, per_user: str | None, per_channel: str | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._user: list[RateLimitItem] = parse_many(per_user) if per_user else []
        self._channel: list[RateLimitItem] = parse_many(per_channel) if per_channel else []
        self._verdicts: OrderedDict[tuple[str, str, str], RateLimited | None] = OrderedDict()

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        event = (message.user.platform, message.user.user_id, message.event_id)
        if event in self._verdicts:
            refused = self._verdicts[event]
            if refused is not None:
                raise refused
            return message
        try:
            await self._count(message)
        except RateLimited as refused:
            self._remember(event, refused)
            raise
        self._remember(event, None)
        return message

    def _remember(self, event: tuple[str, str, str], verdict: RateLimited | None) -> None:
        self._verdicts[event] = verdict
        while len(self._verdicts) > REMEMBERED_EVENTS:
            self._verdicts.popitem(last=False)

    async def _count(self, message: IncomingMessage) -> None:
        key = message.key
        checks: list[tuple[RateLimitItem, tuple[str, ...], str]] = [
            (item, ("user", key.platform, message.user.user_id), "You are") for item in self._user
        ]
        checks += [
            (item, ("channel", key.platform, key.workspace_id, key.channel_id), "This channel is")
            for item in self._channel
        ]
        await self._hit(checks, "messages")

    async def check_commands(self, platform: str, user_id: str) -> None:
        """Count one chat command of ``user_id`` against the per-user limit (its own window, in the same
        storage as turns); RateLimited when over it."""
        identifiers = ("command", platform, user_id)
        await self._hit([(item, identifiers, "You are") for item in self._user], "commands")

    async def _hit(self, checks: list[tuple[RateLimitItem, tuple[str, ...], str]], what: str) -> None:
        for item, identifiers, who in checks:
            if not await self._limiter.hit(item, *identifiers):
                stats = await self._limiter.get_window_stats(item, *identifiers)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    f"{who} sending {what} faster than allowed ({item}). "
                    f"Try again in {humanize(timedelta(seconds=wait))}.",
                    retry_after=float(wait),
                )
