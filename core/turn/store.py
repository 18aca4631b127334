"""The TurnStore on SQLAlchemy (SQLite and PostgreSQL): the event claim and its place in the conversation's
queue, a finished turn stored and its budget settled in one transaction, a failed turn kept hidden (DESIGN.md
§3 steps 2 and 8). Claims carry their replica (``owner``): what a turn writes at its end is written only while
the claim is still that replica's, so a turn resolved by another replica is never stored twice."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from core.db.base import utcnow
from core.db.models import Attachment as AttachmentRow
from core.db.models import Message
from core.db.repositories import (
    EventRepository,
    add_attachments,
    add_audit,
    add_messages,
    advisory_lock,
    claim_event,
    finish_event,
    locate_reply,
    queue_of,
    touch_conversation,
)
from core.db.session import Database
from core.domain.ports import (
    CallUsage,
    ConversationRef,
    FailedTurn,
    FinishedTurn,
    HistoryEntry,
    Hold,
    QueuePlace,
    ReplyLocation,
    TurnMessage,
    UserBan,
    UserImage,
)
from core.domain.types import ConversationKey, IncomingMessage
from core.guards.audit import audit_row, audit_values


class Ledger(Protocol):
    """Settles a budget hold inside a transaction it is given, synchronously (``Budgets.settle_on``: the
    store's transaction runs in one greenlet, ``Database.transact``)."""

    def settle_on(self, connection: Connection, hold: Hold, usages: Sequence[CallUsage]) -> None: ...


class SqlTurnStore:
    """``ledger`` is None when no budget is kept: then nothing is settled. ``owner`` names this process
    (its replica id) in the claims it makes; a claim another replica resolved is no longer written to."""

    def __init__(self, database: Database, ledger: Ledger | None = None, *, owner: str = "") -> None:
        self._db = database
        self._ledger = ledger
        self._owner = owner or new_replica_id()

    @property
    def owner(self) -> str:
        return self._owner

    async def claim(self, message: IncomingMessage) -> QueuePlace | None:
        """One transaction: the event recorded, queued in its conversation, and its place read. Claims of one
        conversation are serialised (an advisory lock on PostgreSQL, the write lock on SQLite), so the order
        of their row ids is the order they were made in."""
        lock = None if self._db.is_sqlite else _lock_id(message.key)

        def claim(connection: Connection) -> tuple[QueuePlace, int | None] | None:
            if lock is not None:
                advisory_lock(connection, lock)
            position = claim_event(
                connection,
                message.event_id,
                message.key.platform,
                key=message.key,
                user_id=message.user.user_id,
                owner=self._owner,
            )
            return None if position is None else _place(connection, message, position)

        claimed = await self._db.transact(claim)
        return None if claimed is None else self._saw(*claimed)

    async def place(self, message: IncomingMessage, position: int) -> QueuePlace:
        return self._saw(*await self._db.read(lambda connection: _place(connection, message, position)))

    def _saw(self, place: QueuePlace, setting_changes: int | None) -> QueuePlace:
        """The place, once the process's caches started over if a setting changed since the last turn
        (another process's change, on SQLite: the turn reads persona, policy and limits afresh)."""
        self._db.board.saw_changes(setting_changes)
        return place

    async def locate(self, message: IncomingMessage, where: ReplyLocation) -> None:
        await self._db.transact(
            lambda connection: locate_reply(connection, message.event_id, self._owner, where)
        )

    async def persist(
        self, turn: FinishedTurn, hold: Hold, usages: Sequence[CallUsage]
    ) -> list[HistoryEntry]:
        """Messages, event status, usage and the guards' decisions of an answered turn, in one transaction
        (Core statements on a connection: the messages in one INSERT that returns their ids)."""
        rows = _values(turn.message, turn.conversation_id, turn.messages, "ok", turn.encoding)
        audit = [audit_values(record) for record in turn.audit]

        def persist(connection: Connection) -> list[int]:
            add_audit(connection, audit)
            ids = add_messages(connection, rows)
            _add_images(connection, turn.messages, ids, turn.images)
            touch_conversation(connection, turn.conversation_id)
            if not finish_event(
                connection,
                turn.message.event_id,
                status="done",
                conversation_id=turn.conversation_id,
                owner=self._owner,
            ):
                raise TurnTakenOver(turn.message.event_id)  # rolls back: another replica resolved it
            self._settle(connection, hold, usages)
            return ids

        ids = await self._db.transact(persist)
        return [
            HistoryEntry(row_id, item.role, item.wire, item.tokens)
            for row_id, item in zip(ids, turn.messages, strict=True)
        ]

    async def charge(self, hold: Hold, usages: Sequence[CallUsage]) -> None:
        await self._db.transact(lambda connection: self._settle(connection, hold, usages))

    async def record_failure(self, turn: FailedTurn) -> None:
        """Keep the failed turn as a hidden pair (user message + error marker), mark the event failed, and
        write the guards' decisions on it (a refusal's too; also when another replica resolved the turn)."""
        async with self._db.unit_of_work() as session:
            session.add_all([audit_row(record) for record in turn.audit])
            if not await EventRepository(session).finish(
                turn.message.event_id,
                status="failed",
                conversation_id=turn.conversation_id,
                owner=self._owner,
            ):
                return  # another replica resolved this turn already: nothing to add
            if turn.conversation_id is not None and turn.user is not None:
                marker = TurnMessage("assistant", [{"type": "text", "text": turn.error.user_message}], {}, 0)
                pair = [turn.user, marker]
                for row in _rows(turn.message, turn.conversation_id, pair, turn.images, "failed", "n/a"):
                    session.add(row)

    def _settle(self, connection: Connection, hold: Hold, usages: Sequence[CallUsage]) -> None:
        if self._ledger is not None:
            self._ledger.settle_on(connection, hold, usages)


class TurnTakenOver(Exception):
    """The turn's claim was resolved by another replica (this one was presumed dead): nothing is stored."""


def new_replica_id() -> str:
    """A name for this process in claims and heartbeats: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


def _lock_id(key: ConversationKey) -> int:
    """A stable signed 64-bit number for PostgreSQL's advisory locks."""
    digest = hashlib.blake2b(str(key).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _place(connection: Connection, message: IncomingMessage, position: int) -> tuple[QueuePlace, int | None]:
    """The claim's place in its conversation's queue, and the count of setting changes read with it."""
    row = queue_of(connection, message.key, message.user.user_id)
    if row.conversation_id is None:
        conversation, history = None, None
    else:
        conversation = ConversationRef(row.conversation_id, row.model)
        history = (row.newest_message, row.history_version)
    ban = UserBan(*row.ban) if row.ban is not None else None
    first = row.head is None or row.head >= position
    return QueuePlace(position, first, conversation, history, ban, ban_read=True), row.setting_changes


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


def _values(
    message: IncomingMessage,
    conversation_id: int,
    pending: Sequence[TurnMessage],
    status: str,
    encoding: str,
) -> list[dict[str, Any]]:
    """``_rows`` as the columns of a Core INSERT."""
    rows: list[dict[str, Any]] = []
    for item in pending:
        is_user = item.role == "user"
        rows.append(
            {
                "conversation_id": conversation_id,
                "role": item.role,
                "content": item.parts,
                "tool_calls": item.tool_calls,
                "tool_call_id": item.tool_call_id,
                "model": item.model,
                "token_count": item.tokens,
                "token_encoding": encoding,
                "status": status,
                "user_id": message.user.user_id if is_user else None,
                "event_id": message.event_id if is_user else None,
                "created_at": message.received_at if is_user else utcnow(),
            }
        )
    return rows


def _add_images(
    connection: Connection,
    pending: Sequence[TurnMessage],
    ids: Sequence[int],
    images: Sequence[UserImage],
) -> None:
    """The user message's images, as ``_rows`` attaches them."""
    if not images:
        return
    for row_id, item in zip(ids, pending, strict=True):
        if item.role == "user":
            now = utcnow()
            add_attachments(
                connection,
                [
                    {
                        "message_id": row_id,
                        "position": position,
                        "name": image.name,
                        "mime": image.mime,
                        "size": len(image.data),
                        "sha256": hashlib.sha256(image.data).hexdigest(),
                        "width": image.width,
                        "height": image.height,
                        "data": image.data,
                        "created_at": now,
                    }
                    for position, image in enumerate(images)
                ],
            )


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
