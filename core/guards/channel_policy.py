"""Per-channel admin settings: which tools the model may use there, and moderation thresholds.

Read on every turn, so each replica caches them (``ReplicaCache``): a change, made on any replica or by
`threadwise admin`, sends a ``policy`` notice in its transaction and every listening replica drops that
channel's entry at once; the whole cache goes when the listening connection (re)opens or a turn's claim finds
the count of setting changes moved (another process's change, on SQLite), and an entry is read again after
``ttl`` seconds (60) should a notice be lost anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, null, select

from core.db.models import ChannelPolicy
from core.db.notices import Notice, Notices, place_in
from core.db.replica_cache import SAFETY_TTL, ReplicaCache
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
    """``notices``: the replica's (its changes reach the others, theirs reach it); None: this process only."""

    def __init__(
        self, database: Database, *, notices: Notices | None = None, ttl: float = SAFETY_TTL
    ) -> None:
        self._db = database
        self._notices = notices
        self._cache: ReplicaCache[Channel, Policy] = ReplicaCache(ttl=ttl)
        database.board.on_start_over(self._cache.clear)  # notices missed, or the count of changes moved
        if notices is not None:
            notices.subscribe("policy", self._changed)

    async def get(self, channel: Channel) -> Policy:
        found, cached = self._cache.get(channel)
        if found and cached is not None:
            return cached
        generation = self._cache.generation
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
        self._cache.put(channel, policy, generation)
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
            if self._notices is not None:
                await self._notices.publish("policy", {"channel": list(channel)}, session)
        self._cache.drop(channel)

    def _changed(self, notice: Notice) -> None:
        self._cache.drop(place_in(notice))


def _policy(row: ChannelPolicy) -> Policy:
    return Policy(
        tuple(row.tools) if row.tools is not None else None,
        row.moderation,
        tuple(row.approval_tools) if row.approval_tools else None,
    )
