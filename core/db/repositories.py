"""Queries per aggregate. Repositories work inside a session they are given and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.db.base import utcnow
from core.db.models import Ban, Conversation, ConversationSummary, Message, ProcessedEvent
from core.domain.types import ConversationKey


def insert_for(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both backends."""
    dialect = session.get_bind().dialect.name
    return pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_or_create(self, key: ConversationKey, started_by: str | None = None) -> Conversation:
        """The conversation of ``key``; a new one records ``started_by`` (an existing one keeps its own)."""
        values = {
            "platform": key.platform,
            "workspace_id": key.workspace_id,
            "channel_id": key.channel_id,
            "thread_id": key.thread_id,
        }
        now = utcnow()
        statement = (
            insert_for(self._session, Conversation)
            .values(**values, started_by=started_by, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=list(values))
        )
        await self._session.execute(statement)
        found = await self.find(key)
        assert found is not None
        return found

    async def find(self, key: ConversationKey) -> Conversation | None:
        result = await self._session.execute(
            select(Conversation).where(
                Conversation.platform == key.platform,
                Conversation.workspace_id == key.workspace_id,
                Conversation.channel_id == key.channel_id,
                Conversation.thread_id == key.thread_id,
            )
        )
        return result.scalar_one_or_none()

    async def touch(self, conversation_id: int) -> None:
        await self._session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(updated_at=utcnow())
        )


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, message: Message) -> None:
        self._session.add(message)

    async def flush(self) -> None:
        await self._session.flush()

    async def state(self, conversation_id: int) -> tuple[int | None, int]:
        """The newest visible message id and the conversation's history version, in one query."""
        newest = (
            select(func.max(Message.id))
            .where(Message.conversation_id == conversation_id, Message.status == "ok")
            .scalar_subquery()
        )
        row = (
            await self._session.execute(
                select(newest, Conversation.history_version).where(Conversation.id == conversation_id)
            )
        ).one_or_none()
        return (row[0], int(row[1])) if row is not None else (None, 0)

    async def bump_version(self, conversation_ids: Sequence[int]) -> None:
        """Messages of these conversations were hidden or deleted: cached windows must be reloaded, and their
        summaries (which may tell of those messages) are deleted."""
        if conversation_ids:
            await self._session.execute(
                update(Conversation)
                .where(Conversation.id.in_(list(conversation_ids)))
                .values(history_version=Conversation.history_version + 1)
            )
            await self._session.execute(
                delete(ConversationSummary).where(
                    ConversationSummary.conversation_id.in_(list(conversation_ids))
                )
            )

    async def hide_all(self, conversation_id: int) -> int:
        """Mark every visible message of a conversation ``reset`` (the model no longer sees them)."""
        result = await self._session.execute(
            update(Message)
            .where(Message.conversation_id == conversation_id, Message.status == "ok")
            .values(status="reset")
        )
        await self.bump_version([conversation_id])
        return int(getattr(result, "rowcount", 0) or 0)

    async def newest_first(
        self, conversation_id: int, *, before_id: int | None, limit: int
    ) -> Sequence[Message]:
        """A page of visible messages, newest first, with their attachments (keyset pagination on id)."""
        statement = (
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.status == "ok")
            .options(selectinload(Message.attachments))
            .order_by(Message.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            statement = statement.where(Message.id < before_id)
        result = await self._session.execute(statement)
        return result.scalars().all()

    async def with_attachments(self, message_ids: Sequence[int]) -> Sequence[Message]:
        """These messages with their attachments (by primary key)."""
        statement = (
            select(Message)
            .where(Message.id.in_(list(message_ids)))
            .options(selectinload(Message.attachments))
        )
        return (await self._session.execute(statement)).scalars().all()


@dataclass(frozen=True, slots=True)
class QueueRow:
    head: int | None  # the earliest unfinished claim of the conversation
    conversation_id: int | None  # None: not created yet
    model: str | None
    history_version: int
    newest_message: int | None  # the newest visible message's id
    ban: tuple[str, datetime | None] | None  # the sender's ban: reason and expiry


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(
        self,
        event_id: str,
        platform: str,
        *,
        key: ConversationKey | None = None,
        user_id: str | None = None,
        owner: str | None = None,
        status: str = "claimed",
    ) -> int | None:
        """Record ``event_id``; its row id, or None when it was already recorded (by this or any concurrent
        delivery). A turn's claim names its conversation (``key``), its sender and the replica running it
        (``owner``); a delivery that is only deduplicated (a slash command) is recorded ``done``."""
        now = utcnow()
        where = (
            {"workspace_id": key.workspace_id, "channel_id": key.channel_id, "thread_id": key.thread_id}
            if key is not None
            else {}
        )
        statement = (
            insert_for(self._session, ProcessedEvent)
            .values(
                event_id=event_id,
                platform=platform,
                status=status,
                user_id=user_id,
                owner=owner,
                created_at=now,
                updated_at=now,
                **where,
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(ProcessedEvent.id)
        )
        result = await self._session.execute(statement)
        return result.scalar_one_or_none()

    async def queue(self, key: ConversationKey, user_id: str) -> QueueRow:
        """In one statement: the earliest unfinished turn of the conversation of ``key`` (its claim's row
        id), the conversation as it is now (id, model, history state; None: not created yet), and
        ``user_id``'s ban."""
        banned = (Ban.platform == key.platform, Ban.user_id == user_id)
        head = select(func.min(ProcessedEvent.id)).where(
            ProcessedEvent.platform == key.platform,
            ProcessedEvent.workspace_id == key.workspace_id,
            ProcessedEvent.channel_id == key.channel_id,
            ProcessedEvent.thread_id == key.thread_id,
            ProcessedEvent.status == "claimed",
        )
        newest = (
            select(func.max(Message.id))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(*_is(key), Message.status == "ok")
        )
        row = (
            await self._session.execute(
                select(
                    head.scalar_subquery(),
                    select(Conversation.id).where(*_is(key)).scalar_subquery(),
                    select(Conversation.model).where(*_is(key)).scalar_subquery(),
                    select(Conversation.history_version).where(*_is(key)).scalar_subquery(),
                    newest.scalar_subquery(),
                    select(Ban.id).where(*banned).scalar_subquery(),
                    select(Ban.reason).where(*banned).scalar_subquery(),
                    select(Ban.expires_at).where(*banned).scalar_subquery(),
                )
            )
        ).one()
        ban = (row[6], row[7]) if row[5] is not None else None
        return QueueRow(row[0], row[1], row[2], int(row[3] or 0), row[4], ban)

    async def finish(
        self, event_id: str, *, status: str, conversation_id: int | None, owner: str | None = None
    ) -> bool:
        """Mark a claimed event finished; with ``owner``, only while it is still that replica's claim.
        False when nothing was marked (another replica resolved it)."""
        statement = update(ProcessedEvent).where(ProcessedEvent.event_id == event_id)
        if owner is not None:
            statement = statement.where(ProcessedEvent.owner == owner, ProcessedEvent.status == "claimed")
        result = await self._session.execute(
            statement.values(status=status, conversation_id=conversation_id, updated_at=utcnow())
        )
        return bool(getattr(result, "rowcount", 0))

    async def locate(self, event_id: str, owner: str, reply: dict[str, str]) -> None:
        """Where a claimed turn's reply is shown (while the claim is still ``owner``'s)."""
        await self._session.execute(
            update(ProcessedEvent)
            .where(
                ProcessedEvent.event_id == event_id,
                ProcessedEvent.owner == owner,
                ProcessedEvent.status == "claimed",
            )
            .values(reply=reply)
        )

    async def last_thread(
        self, platform: str, workspace_id: str, channel_id: str, user_id: str
    ) -> str | None:
        """The thread of the newest turn ``user_id`` sent in the channel."""
        found = await self._session.scalar(
            select(ProcessedEvent.thread_id)
            .where(
                ProcessedEvent.platform == platform,
                ProcessedEvent.workspace_id == workspace_id,
                ProcessedEvent.channel_id == channel_id,
                ProcessedEvent.user_id == user_id,
            )
            .order_by(ProcessedEvent.id.desc())
            .limit(1)
        )
        return str(found) if found is not None else None


def _is(key: ConversationKey) -> tuple[ColumnElement[bool], ...]:
    return (
        Conversation.platform == key.platform,
        Conversation.workspace_id == key.workspace_id,
        Conversation.channel_id == key.channel_id,
        Conversation.thread_id == key.thread_id,
    )
