"""Per-channel admin settings: which tools the model may use there, and moderation thresholds.

Read on every turn, so they are cached for a few seconds; a change made by this process is visible at once,
one made by another replica within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, null, select

from core.db.models import ChannelPolicy
from core.db.repositories import insert_for
from core.db.session import Database
from core.domain.types import ConversationKey

Channel = tuple[str, str, str]  # platform, workspace_id, channel_id


@dataclass(frozen=True, slots=True)
class Policy:
    tools: tuple[str, ...] | None = None  # None: the tools enabled by default
    moderation: dict[str, Any] | None = None
    approval: tuple[str, ...] | None = None  # tool patterns needing approval here (besides the default)


def channel_of(key: ConversationKey) -> Channel:
    return (key.platform, key.workspace_id, key.channel_id)


class ChannelPolicies:
    def __init__(self, database: Database, *, ttl: float = 10.0) -> None:
        self._db = database
        self._ttl = ttl
        self._cache: dict[Channel, tuple[float, Policy]] = {}

    async def get(self, channel: Channel) -> Policy:
        cached = self._cache.get(channel)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        platform, workspace_id, channel_id = channel
        async with self._db.reader() as session:
            row = (
                await session.execute(
                    select(ChannelPolicy).where(
                        ChannelPolicy.platform == platform,
                        ChannelPolicy.workspace_id == workspace_id,
                        ChannelPolicy.channel_id == channel_id,
                    )
                )
            ).scalar_one_or_none()
        policy = _policy(row) if row is not None else Policy()
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[channel] = (now, policy)
        return policy

    async def set_tools(self, channel: Channel, tools: Sequence[str] | None, *, by: str) -> None:
        await self._upsert(channel, {"tools": list(tools) if tools is not None else None}, by)

    async def set_approval(self, channel: Channel, patterns: Sequence[str] | None, *, by: str) -> None:
        await self._upsert(channel, {"approval_tools": list(patterns) if patterns else None}, by)

    async def set_moderation(self, channel: Channel, moderation: dict[str, Any] | None, *, by: str) -> None:
        await self._upsert(channel, {"moderation": moderation}, by)

    async def all(self) -> list[tuple[Channel, Policy]]:
        async with self._db.reader() as session:
            rows = (await session.execute(select(ChannelPolicy).order_by(ChannelPolicy.id))).scalars().all()
        return [((row.platform, row.workspace_id, row.channel_id), _policy(row)) for row in rows]

    async def _upsert(self, channel: Channel, values: dict[str, Any], by: str) -> None:
        platform, workspace_id, channel_id = channel
        # SQL NULL, not JSON null, so that "nothing set" is one state and the empty row can be dropped
        values = {name: null() if value is None else value for name, value in values.items()}
        values = {**values, "set_by": by, "updated_at": datetime.now(UTC)}
        async with self._db.unit_of_work() as session:
            await session.execute(
                insert_for(session, ChannelPolicy)
                .values(platform=platform, workspace_id=workspace_id, channel_id=channel_id, **values)
                .on_conflict_do_update(index_elements=["platform", "workspace_id", "channel_id"], set_=values)
            )
            await session.execute(
                delete(ChannelPolicy).where(
                    ChannelPolicy.platform == platform,
                    ChannelPolicy.workspace_id == workspace_id,
                    ChannelPolicy.channel_id == channel_id,
                    ChannelPolicy.tools.is_(None),
                    ChannelPolicy.moderation.is_(None),
                    ChannelPolicy.approval_tools.is_(None),
                )
            )
        self._cache.pop(channel, None)


def _policy(row: ChannelPolicy) -> Policy:
    return Policy(
        tuple(row.tools) if row.tools is not None else None,
        row.moderation,
        tuple(row.approval_tools) if row.approval_tools else None,
    )
