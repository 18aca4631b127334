"""Retention and erasure: old conversation content and audit details are purged; a user can erase theirs.

Conversation rows stay (they hold only platform ids and the chosen model) so that a replica that cached a
conversation's id never writes into a deleted row; their messages and attachments go. The usage ledger is kept
for reports with the user removed (``(erased)``); budget counters are not touched, so erasing does not reset a
spending limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import (
    AnswerFeedback,
    Conversation,
    Message,
    ModerationEvent,
    ProcessedEvent,
    ToolCallRecord,
    UsageRecord,
)
from core.db.repositories import MessageRepository
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.errors import BadInput

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per DELETE … IN (…), well under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class PurgeSummary:
    conversations: int
    messages: int
    moderation_events: int
    usage_rows_anonymised: int
    processed_events: int


@dataclass(frozen=True, slots=True)
class ErasureSummary:
    conversations: int
    messages: int
    moderation_events: int
    usage_rows: int

    @property
    def empty(self) -> bool:
        return not (self.messages or self.moderation_events or self.usage_rows)

    def describe(self) -> str:
        return (
            f"{self.messages} messages in {self.conversations} conversations, "
            f"{self.moderation_events} moderation records and {self.usage_rows} usage records "
            "(usage is kept for cost reports without your name)"
        )


class Retention:
    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self._db = database
        self._clock = clock

    @property
    def database(self) -> Database:
        return self._db

    async def purge(self, days: int) -> PurgeSummary:
        """Remove what is older than ``days``: messages of conversations idle that long (whole conversations,
        so tool calls and results never part), moderation events and processed-event ids; the ledger loses
        its user ids."""
        if days < 1:
            raise BadInput(f"Retention is a number of days, at least 1 (not {days}).")
        cutoff = self._clock() - timedelta(days=days)
        async with self._db.unit_of_work() as session:
            idle = select(Conversation.id).where(Conversation.updated_at < cutoff)
            found = (
                await session.execute(
                    select(Message.id, Message.conversation_id).where(Message.conversation_id.in_(idle))
                )
            ).all()
            stale = [message_id for message_id, _ in found]
            touched = sorted({conversation_id for _, conversation_id in found})
            conversations = len(touched)
            await MessageRepository(session).bump_version(touched)
            messages = await _delete_messages(session, stale)
            moderation = await session.execute(
                delete(ModerationEvent).where(ModerationEvent.created_at < cutoff)
            )
            anonymised = await session.execute(
                update(UsageRecord)
                .where(UsageRecord.created_at < cutoff, UsageRecord.user_id.is_not(None))
                .values(user_id=None)
            )
            await session.execute(delete(AnswerFeedback).where(AnswerFeedback.created_at < cutoff))
            events = await session.execute(delete(ProcessedEvent).where(ProcessedEvent.created_at < cutoff))
            await session.execute(delete(ToolCallRecord).where(ToolCallRecord.created_at < cutoff))
        summary = PurgeSummary(
            conversations,
            messages,
            _count(moderation),
            _count(anonymised),
            _count(events),
        )
        log.info("retention (%s days): %s", days, summary)
        return summary

    async def erasure_preview(self, platform: str, user_id: str) -> ErasureSummary:
        """What ``erase`` would remove, for the confirmation step."""
        async with self._db.reader() as session:
            plan = await owned_messages(session, platform, user_id)
            moderation = await session.execute(select(func.count()).where(*_moderation_of(platform, user_id)))
            usage = await session.execute(select(func.count()).where(*_usage_of(platform, user_id)))
        return ErasureSummary(
            plan.conversations, len(plan.message_ids), int(moderation.scalar_one()), int(usage.scalar_one())
        )

    async def erase(self, platform: str, user_id: str) -> ErasureSummary:
        """Delete the user's messages (and the answers to them), attachments and moderation records; remove
        the user from the usage ledger. Other people's messages in shared threads stay."""
        async with self._db.unit_of_work() as session:
            plan = await owned_messages(session, platform, user_id)
            await MessageRepository(session).bump_version(plan.conversation_ids)
            messages = await _delete_messages(session, plan.message_ids)
            moderation = await session.execute(
                delete(ModerationEvent).where(*_moderation_of(platform, user_id))
            )
            usage = await session.execute(
                update(UsageRecord).where(*_usage_of(platform, user_id)).values(user_id=None)
            )
            await session.execute(  # who rated what
                delete(AnswerFeedback).where(
                    AnswerFeedback.platform == platform, AnswerFeedback.user_id == user_id
                )
            )
            await session.execute(  # tool arguments can hold what the user asked for
                delete(ToolCallRecord).where(
                    ToolCallRecord.platform == platform, ToolCallRecord.user_id == user_id
                )
            )
        summary = ErasureSummary(plan.conversations, messages, _count(moderation), _count(usage))
        log.info("erased the data of %s:%s: %s", platform, user_id, summary)
        return summary


@dataclass(frozen=True, slots=True)
class OwnedMessages:
    conversation_ids: list[int]
    message_ids: list[int]

    @property
    def conversations(self) -> int:
        return len(self.conversation_ids)


async def owned_messages(session: AsyncSession, platform: str, user_id: str) -> OwnedMessages:
    """The user's messages plus everything that answers them (assistant and tool messages up to the next
    message of someone else), per conversation: what erasure deletes and a data export holds."""
    theirs = (
        select(Message.conversation_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.platform == platform, Message.user_id == user_id, Message.role == "user")
        .distinct()
    )
    conversation_ids = list((await session.execute(theirs)).scalars())
    doomed: list[int] = []
    for conversation_id in conversation_ids:
        rows = await session.execute(
            select(Message.id, Message.role, Message.user_id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id)
        )
        owned = False
        for message_id, role, author in rows.all():
            if role == "user":
                owned = author == user_id
            if owned:
                doomed.append(message_id)
    return OwnedMessages(conversation_ids, doomed)


async def _delete_messages(session: AsyncSession, ids: list[int]) -> int:
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        result = await session.execute(delete(Message).where(Message.id.in_(ids[start : start + _CHUNK])))
        deleted += _count(result)
    return deleted


def _moderation_of(platform: str, user_id: str) -> tuple[ColumnElement[bool], ...]:
    return (ModerationEvent.platform == platform, ModerationEvent.user_id == user_id)


def _usage_of(platform: str, user_id: str) -> tuple[ColumnElement[bool], ...]:
    return (UsageRecord.platform == platform, UsageRecord.user_id == user_id)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@contextlib.asynccontextmanager
async def purging(retention: Retention, days: int, every: float = 3600.0) -> AsyncIterator[None]:
    """While serving: purge what is older than ``days`` now, then every ``every`` seconds."""

    async def loop() -> None:
        while True:
            try:
                await retention.purge(days)
            except Exception:
                log.exception("retention purge failed; retrying in %.0f s", every)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop(), name="retention")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
