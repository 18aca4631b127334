"""The TurnStore on SQLAlchemy (SQLite and PostgreSQL): the event claim, a finished turn stored and its budget
settled in one transaction, a failed turn kept hidden (DESIGN.md §3 steps 2 and 8)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import Attachment as AttachmentRow
from core.db.models import Message
from core.db.repositories import ConversationRepository, EventRepository, MessageRepository
from core.db.session import Database
from core.domain.ports import (
    CallUsage,
    FailedTurn,
    FinishedTurn,
    HistoryEntry,
    Hold,
    TurnMessage,
    UserImage,
)
from core.domain.types import IncomingMessage


class Ledger(Protocol):
    """Settles a budget hold inside a transaction it is given (``Budgets.settle_in``)."""

    async def settle_in(self, session: AsyncSession, hold: Hold, usages: Sequence[CallUsage]) -> None: ...


class SqlTurnStore:
    """``ledger`` is None when no budget is kept: then nothing is settled."""

    def __init__(self, database: Database, ledger: Ledger | None = None) -> None:
        self._db = database
        self._ledger = ledger

    async def claim(self, message: IncomingMessage) -> bool:
        async with self._db.unit_of_work() as session:
            return await EventRepository(session).claim(message.event_id, message.key.platform)

    async def persist(
        self, turn: FinishedTurn, hold: Hold, usages: Sequence[CallUsage]
    ) -> list[HistoryEntry]:
        """Messages, event status and usage of a successful turn, in one transaction."""
        rows = _rows(turn.message, turn.conversation_id, turn.messages, turn.images, "ok", turn.encoding)
        async with self._db.unit_of_work() as session:
            messages = MessageRepository(session)
            for row in rows:
                messages.add(row)
            await messages.flush()
            await ConversationRepository(session).touch(turn.conversation_id)
            await EventRepository(session).finish(
                turn.message.event_id, status="done", conversation_id=turn.conversation_id
            )
            await self._settle(session, hold, usages)
        return [
            HistoryEntry(row.id, item.role, item.wire, item.tokens)
            for row, item in zip(rows, turn.messages, strict=True)
        ]

    async def charge(self, hold: Hold, usages: Sequence[CallUsage]) -> None:
        async with self._db.unit_of_work() as session:
            await self._settle(session, hold, usages)

    async def record_failure(self, turn: FailedTurn) -> None:
        """Keep the failed turn as a hidden pair (user message + error marker) and mark the event failed."""
        async with self._db.unit_of_work() as session:
            if turn.conversation_id is not None and turn.user is not None:
                marker = TurnMessage("assistant", [{"type": "text", "text": turn.error.user_message}], {}, 0)
                pair = [turn.user, marker]
                for row in _rows(turn.message, turn.conversation_id, pair, turn.images, "failed", "n/a"):
                    session.add(row)
            await EventRepository(session).finish(
                turn.message.event_id, status="failed", conversation_id=turn.conversation_id
            )

    async def _settle(self, session: AsyncSession, hold: Hold, usages: Sequence[CallUsage]) -> None:
        if self._ledger is not None:
            await self._ledger.settle_in(session, hold, usages)


def _rows(
    message: IncomingMessage,
    conversation_id: int,
    pending: Sequence[TurnMessage],
    images: Sequence[UserImage],
    status: str,
    encoding: str,
) -> list[Message]:
    rows: list[Message] = []
    for item in pending:
        is_user = item.role == "user"
        row = Message(
            conversation_id=conversation_id,
            role=item.role,
            content=item.parts,
            tool_calls=item.tool_calls,
            tool_call_id=item.tool_call_id,
            model=item.model,
            token_count=item.tokens,
            token_encoding=encoding,
            status=status,
            user_id=message.user.user_id if is_user else None,
            event_id=message.event_id if is_user else None,
            created_at=message.received_at if is_user else None,
        )
        if is_user:
            row.attachments = _attachments(images)
        rows.append(row)
    return rows


def _attachments(images: Sequence[UserImage]) -> list[AttachmentRow]:
    return [
        AttachmentRow(
            position=position,
            name=image.name,
            mime=image.mime,
            size=len(image.data),
            sha256=hashlib.sha256(image.data).hexdigest(),
            width=image.width,
            height=image.height,
            data=image.data,
        )
        for position, image in enumerate(images)
    ]
