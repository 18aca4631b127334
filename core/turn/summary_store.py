"""The stored running summary of a conversation (table ``conversation_summaries``) and the visible messages a
summary has not covered yet, on SQLAlchemy (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from core.db.models import Conversation, ConversationSummary, Message
from core.db.session import Database
from core.turn.summary import DroppedMessage, StoredSummary

PAGE_SIZE = 200


class SqlSummaries:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def current(self, conversation_id: int) -> StoredSummary | None:
        """The conversation's summary, unless its history changed since (reset, erasure, retention)."""
        async with self._db.reader() as session:
            row = (
                await session.execute(
                    select(ConversationSummary, Conversation.history_version)
                    .join(Conversation, Conversation.id == ConversationSummary.conversation_id)
                    .where(ConversationSummary.conversation_id == conversation_id)
                )
            ).one_or_none()
        if row is None:
            return None
        summary, version = row
        if summary.history_version != version:
            return None
        return StoredSummary(
            summary.text,
            summary.through_message_id,
            summary.token_count,
            summary.token_encoding,
        )

    async def dropped(
        self, conversation_id: int, after_id: int | None, before_id: int, limit: int = PAGE_SIZE
    ) -> list[DroppedMessage]:
        """Visible messages with ``after_id < id < before_id``, oldest first, at most ``limit``."""
        statement = (
            select(Message.id, Message.role, Message.content, Message.tool_calls)
            .where(
                Message.conversation_id == conversation_id,
                Message.status == "ok",
                Message.id < before_id,
            )
            .order_by(Message.id)
            .limit(limit)
        )
        if after_id is not None:
            statement = statement.where(Message.id > after_id)
        async with self._db.reader() as session:
            rows = (await session.execute(statement)).all()
        return [DroppedMessage(row.id, row.role, _text(row.content, row.tool_calls)) for row in rows]

    async def save(self, conversation_id: int, summary: StoredSummary) -> None:
        """Store ``summary`` as the conversation's (replacing the one before), for its history as it is now
        (a turn and a reset of its conversation never overlap)."""
        async with self._db.unit_of_work() as session:
            version = await session.scalar(
                select(Conversation.history_version).where(Conversation.id == conversation_id)
            )
            row = await session.get(ConversationSummary, conversation_id)
            if row is None:
                row = ConversationSummary(conversation_id=conversation_id)
                session.add(row)
            row.text = summary.text
            row.through_message_id = summary.through_id
            row.token_count = summary.tokens
            row.token_encoding = summary.encoding
            row.history_version = int(version or 0)


def _text(content: list[dict[str, object]], tool_calls: list[dict[str, object]] | None) -> str:
    pieces = []
    for part in content:
        if part.get("type") == "text":
            pieces.append(str(part.get("text", "")))
        elif part.get("type") == "image":
            pieces.append("[an image]")
    for call in tool_calls or []:
        function = call.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        pieces.append(f"[called the tool {name}]")
    return " ".join(piece for piece in pieces if piece)
