"""What is stored, handed out: one conversation's visible turns (``/ai export``) and everything stored about
one user (``threadwise admin export``).

A conversation's transcript holds its messages that later turns see (status ``ok``): the users' and the
assistant's text, images named; tool calls and results, failed turns and messages hidden by ``/ai reset``
are left out. It is read in pages and stops at ``MAX_TRANSCRIPT_CHARS``, saying how many messages are left.

A user's export is JSON, produced in chunks (attachments included, base64), so a heavy user's images are
never all in memory at once: their conversations, their messages and the answers to them (what erasure
deletes), usage rows, moderation events, tool calls, bans, budgets, admin actions by or about them and the
events they sent. There is no feedback table, so there is no feedback to export.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from core.admin.retention import owned_messages
from core.db.base import Base
from core.db.models import (
    AdminAction,
    AnswerFeedback,
    Attachment,
    Ban,
    Budget,
    BudgetCounter,
    Conversation,
    Message,
    ModerationEvent,
    ProcessedEvent,
    ToolCallRecord,
    UsageRecord,
)
from core.db.repositories import ConversationRepository
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.types import ConversationKey

MAX_TRANSCRIPT_CHARS = 4_000_000  # a Markdown file well under Discord's 10 MB upload limit
PAGE = 200  # rows per query


@dataclass(frozen=True, slots=True)
class Turn:
    """One visible message: who (a user id, or None for the assistant), when, and its text."""

    role: str
    user_id: str | None
    model: str | None
    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class Transcript:
    key: ConversationKey
    model: str | None  # the conversation's own model (None: the default)
    started_by: str | None
    started_at: datetime
    participants: frozenset[str]  # everyone who sent a message in it, and who started it
    turns: tuple[Turn, ...]
    left_out: int = 0  # messages past the size limit


@dataclass(slots=True)
class UserExport:
    """Everything stored about one user, as JSON text in chunks (``chunks``); ``counts`` fills as it runs."""

    database: Database
    platform: str
    user_id: str
    clock: Clock = utc_now
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"{self.platform}:{self.user_id}"

    async def chunks(self) -> AsyncIterator[str]:
        header = {"user": self.subject, "exported_at": self.clock().isoformat()}
        yield "{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in header.items())
        sections = list(self._sections())
        for index, (name, rows) in enumerate(sections):
            self.counts[name] = 0
            yield f"  {json.dumps(name)}: ["
            async for row in rows:
                yield ("\n    " if not self.counts[name] else ",\n    ") + json.dumps(row, ensure_ascii=False)
                self.counts[name] += 1
            yield ("\n  ]" if self.counts[name] else "]") + (",\n" if index < len(sections) - 1 else "\n")
        yield "}\n"

    def _sections(self) -> list[tuple[str, AsyncIterator[dict[str, Any]]]]:
        platform, user_id, subject = self.platform, self.user_id, self.subject
        return [
            ("conversations", self._conversations()),
            ("messages", self._messages()),
            (
                "usage",
                self._rows(UsageRecord, UsageRecord.platform == platform, UsageRecord.user_id == user_id),
            ),
            (
                "moderation_events",
                self._rows(
                    ModerationEvent, ModerationEvent.platform == platform, ModerationEvent.user_id == user_id
                ),
            ),
            (
                "tool_calls",
                self._rows(
                    ToolCallRecord, ToolCallRecord.platform == platform, ToolCallRecord.user_id == user_id
                ),
            ),
            (
                "feedback",
                self._rows(
                    AnswerFeedback, AnswerFeedback.platform == platform, AnswerFeedback.user_id == user_id
                ),
            ),
            ("bans", self._rows(Ban, Ban.platform == platform, Ban.user_id == user_id)),
            ("budgets", self._rows(Budget, Budget.scope == "user", Budget.subject == subject)),
            (
                "budget_counters",
                self._rows(BudgetCounter, BudgetCounter.scope == "user", BudgetCounter.subject == subject),
            ),
            (
                "admin_actions",
                self._rows(
                    AdminAction,
                    or_(
                        (AdminAction.platform == platform) & (AdminAction.actor_id == user_id),
                        AdminAction.target == subject,
                    ),
                ),
            ),
            (
                "events",
                self._rows(
                    ProcessedEvent, ProcessedEvent.platform == platform, ProcessedEvent.user_id == user_id
                ),
            ),
        ]

    async def _conversations(self) -> AsyncIterator[dict[str, Any]]:
        async with self.database.reader() as session:
            owned = await owned_messages(session, self.platform, self.user_id)
            started = select(Conversation.id).where(
                Conversation.platform == self.platform, Conversation.started_by == self.user_id
            )
            ids = sorted({*owned.conversation_ids, *(await session.execute(started)).scalars()})
        for start in range(0, len(ids), PAGE):
            async with self.database.reader() as session:
                found = await session.execute(
                    select(Conversation)
                    .where(Conversation.id.in_(ids[start : start + PAGE]))
                    .order_by(Conversation.id)
                )
                for row in found.scalars():
                    yield _plain(row)

    async def _messages(self) -> AsyncIterator[dict[str, Any]]:
        async with self.database.reader() as session:
            ids = sorted((await owned_messages(session, self.platform, self.user_id)).message_ids)
        for start in range(0, len(ids), PAGE // 4):  # with their attachments: fewer at a time
            async with self.database.reader() as session:
                found = await session.execute(
                    select(Message)
                    .where(Message.id.in_(ids[start : start + PAGE // 4]))
                    .options(selectinload(Message.attachments))
                    .order_by(Message.id)
                )
                for message in found.scalars():
                    row = _plain(message)
                    row["attachments"] = [_attachment(a) for a in message.attachments]
                    yield row

    async def _rows(self, model: type[Base], *where: ColumnElement[bool]) -> AsyncIterator[dict[str, Any]]:
        """Every row of ``model`` matching ``where``, by id, a page at a time."""
        key: InstrumentedAttribute[int] = model.id  # type: ignore[attr-defined]
        last = 0
        while True:
            async with self.database.reader() as session:
                found = await session.execute(
                    select(model).where(*where, key > last).order_by(key).limit(PAGE)
                )
                rows = list(found.scalars())
            for row in rows:
                yield _plain(row)
            if len(rows) < PAGE:
                return
            last = int(rows[-1].id)  # type: ignore[attr-defined]


class ConversationExports:
    """The visible turns of a conversation, for `/ai export`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def transcript(
        self, key: ConversationKey, max_chars: int = MAX_TRANSCRIPT_CHARS
    ) -> Transcript | None:
        """None when ``key`` holds no conversation."""
        async with self._db.reader() as session:
            conversation = await ConversationRepository(session).find(key)
            if conversation is None:
                return None
            senders = await session.execute(
                select(Message.user_id)
                .where(Message.conversation_id == conversation.id, Message.user_id.is_not(None))
                .distinct()
            )
            participants = {str(user) for user in senders.scalars()}
        if conversation.started_by:
            participants.add(conversation.started_by)
        turns, left_out = await self._turns(conversation.id, max_chars)
        return Transcript(
            key,
            conversation.model,
            conversation.started_by,
            conversation.created_at,
            frozenset(participants),
            tuple(turns),
            left_out,
        )

    async def _turns(self, conversation_id: int, max_chars: int) -> tuple[list[Turn], int]:
        visible = (Message.conversation_id == conversation_id, Message.status == "ok")
        turns: list[Turn] = []
        size, last = 0, 0
        while True:
            async with self._db.reader() as session:
                found = await session.execute(
                    select(
                        Message.id,
                        Message.role,
                        Message.user_id,
                        Message.model,
                        Message.created_at,
                        Message.content,
                    )
                    .where(*visible, Message.id > last, Message.role.in_(("user", "assistant")))
                    .order_by(Message.id)
                    .limit(PAGE)
                )
                rows = found.all()
                names = await _image_names(session, [row.id for row in rows])
            for row in rows:
                text = _text(row.content, names.get(row.id, ()))
                if not text.strip():
                    continue  # an assistant message that only called tools
                if size + len(text) > max_chars:
                    return turns, await self._count_after(conversation_id, last)
                size += len(text)
                turns.append(Turn(row.role, row.user_id, row.model, row.created_at, text))
                last = row.id
            if len(rows) < PAGE:
                return turns, 0
            last = rows[-1].id

    async def _count_after(self, conversation_id: int, last: int) -> int:
        async with self._db.reader() as session:
            found = await session.execute(
                select(func.count()).where(
                    Message.conversation_id == conversation_id,
                    Message.status == "ok",
                    Message.role.in_(("user", "assistant")),
                    Message.id > last,
                )
            )
        return int(found.scalar_one())


async def _image_names(session: Any, message_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    if not message_ids:
        return {}
    found = await session.execute(
        select(Attachment.message_id, Attachment.name)
        .where(Attachment.message_id.in_(message_ids))
        .order_by(Attachment.message_id, Attachment.position)
    )
    names: dict[int, list[str]] = {}
    for message_id, name in found.all():
        names.setdefault(message_id, []).append(name)
    return {message_id: tuple(found_names) for message_id, found_names in names.items()}


def _text(parts: Sequence[dict[str, Any]], images: Sequence[str]) -> str:
    out: list[str] = []
    for part in parts:
        if part.get("type") == "text":
            out.append(str(part.get("text", "")))
        elif part.get("type") == "image":
            position = int(part.get("attachment", 0))
            name = images[position] if position < len(images) else "image"
            out.append(f"\n\n[image: {name}]\n\n")
    return "".join(out).strip()


def _plain(row: Base) -> dict[str, Any]:
    """A row's columns as JSON values (times in ISO 8601)."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        out[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _attachment(row: Attachment) -> dict[str, Any]:
    out = _plain(row)
    out["data"] = base64.b64encode(row.data).decode("ascii")
    return out
