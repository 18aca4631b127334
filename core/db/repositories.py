"""Queries per aggregate. Repositories work inside a session they are given and never commit.

The statements a turn runs every time are built once per process (``_prepared``) with named parameters, on
the Core tables where no ORM object is wanted: building a statement, and SQLAlchemy's cache key of it, cost
more CPU than running it on SQLite, so a statement rebuilt per call was a large part of a turn's cost.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, selectinload

from core.db.base import utcnow
from core.db.models import (
    Attachment,
    Ban,
    Conversation,
    ConversationSummary,
    Message,
    ModerationEvent,
    ProcessedEvent,
    SettingChanges,
)
from core.domain.types import ConversationKey

SETTING_CHANGES_ROW = 1  # the one row of ``setting_changes`` (migration 0012)
Executor = AsyncSession | AsyncConnection  # a session, or a Core connection where no ORM object is wanted
SyncExecutor = Session | Connection  # the same inside a greenlet (``run_sync``, ``Database.transact``)


def insert_for(session: Executor, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both backends (for a session or a connection)."""
    dialect = _dialect(session)
    return pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)


_EVENTS = cast(Table, ProcessedEvent.__table__)
_CONVERSATIONS = cast(Table, Conversation.__table__)
_MESSAGES = cast(Table, Message.__table__)
_BANS = cast(Table, Ban.__table__)
_ATTACHMENTS = cast(Table, Attachment.__table__)
_MODERATION = cast(Table, ModerationEvent.__table__)
_SETTING_CHANGES = cast(Table, SettingChanges.__table__)


def _values(table: Table, prefix: str, *columns: str) -> dict[str, Any]:
    """``column=:prefix_column`` for an INSERT's or UPDATE's values, typed as the column is."""
    return {name: bindparam(f"{prefix}_{name}", type_=table.c[name].type) for name in columns}


def _dialect(executor: Executor) -> str:
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


class _Prepared:
    """The hot path's statements, each built on first use (per dialect where it differs) and kept."""

    @functools.cached_property
    def conversation(self) -> Any:
        return select(Conversation).where(
            Conversation.platform == bindparam("k_platform"),
            Conversation.workspace_id == bindparam("k_workspace"),
            Conversation.channel_id == bindparam("k_channel"),
            Conversation.thread_id == bindparam("k_thread"),
        )

    @functools.cache  # noqa: B019 - one instance per process, never freed
    def new_conversation(self, dialect: str) -> Any:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        columns = (
            "platform",
            "workspace_id",
            "channel_id",
            "thread_id",
            "started_by",
            "created_at",
            "updated_at",
        )
        return (
            insert(_CONVERSATIONS)
            .values(**_values(_CONVERSATIONS, "n", *columns))
            .on_conflict_do_nothing(index_elements=["platform", "workspace_id", "channel_id", "thread_id"])
        )

    @functools.cache  # noqa: B019 - one instance per process, never freed
    def created_conversation(self, dialect: str) -> Any:
        return self.new_conversation(dialect).returning(_CONVERSATIONS.c.id)

    @functools.cached_property
    def conversation_model(self) -> Any:
        c = _CONVERSATIONS.c
        return select(c.id, c.model).where(
            c.platform == bindparam("k_platform"),
            c.workspace_id == bindparam("k_workspace"),
            c.channel_id == bindparam("k_channel"),
            c.thread_id == bindparam("k_thread"),
        )

    @functools.cached_property
    def touch(self) -> Any:
        c = _CONVERSATIONS.c
        return (
            update(_CONVERSATIONS)
            .where(c.id == bindparam("t_id"))
            .values(**_values(_CONVERSATIONS, "t", "updated_at"))
        )

    @functools.cached_property
    def history_state(self) -> Any:
        c, m = _CONVERSATIONS.c, _MESSAGES.c
        conversation: Any = bindparam("s_conversation")
        newest = (
            select(func.max(m.id))
            .where(m.conversation_id == conversation, m.status == "ok")
            .scalar_subquery()
        )
        return select(newest, c.history_version).where(c.id == conversation)

    @functools.cache  # noqa: B019 - one instance per process, never freed
    def claim(self, dialect: str) -> Any:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        columns = (
            "event_id", "platform", "status", "user_id", "owner", "created_at", "updated_at",
            "workspace_id", "channel_id", "thread_id",
        )  # fmt: skip
        return (
            insert(_EVENTS)
            .values(**_values(_EVENTS, "c", *columns))
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(_EVENTS.c.id)
        )

    @functools.cached_property
    def queue(self) -> Any:
        """One row: the conversation's earliest unfinished claim, the conversation (outer-joined once: id,
        model, history version, newest visible message), the sender's ban (outer-joined once) and the count
        of setting changes (``setting_changes``)."""
        e, c, m, b, s = _EVENTS.c, _CONVERSATIONS.c, _MESSAGES.c, _BANS.c, _SETTING_CHANGES.c
        platform: Any = bindparam("q_platform")
        workspace: Any = bindparam("q_workspace")
        channel: Any = bindparam("q_channel")
        thread: Any = bindparam("q_thread")
        user: Any = bindparam("q_user")
        head = select(func.min(e.id)).where(
            e.platform == platform,
            e.workspace_id == workspace,
            e.channel_id == channel,
            e.thread_id == thread,
            e.status == "claimed",
        )
        newest = select(func.max(m.id)).where(m.conversation_id == c.id, m.status == "ok")
        changes = select(s.changes).where(s.id == SETTING_CHANGES_ROW)
        one = select(literal_column("1").label("one")).subquery("one")
        joined = one.outerjoin(
            _CONVERSATIONS,
            and_(
                c.platform == platform,
                c.workspace_id == workspace,
                c.channel_id == channel,
                c.thread_id == thread,
            ),
        ).outerjoin(_BANS, and_(b.platform == platform, b.user_id == user))
        return select(
            head.scalar_subquery(),
            c.id,
            c.model,
            c.history_version,
            newest.scalar_subquery(),
            b.id,
            b.reason,
            b.expires_at,
            changes.scalar_subquery(),
        ).select_from(joined)

    @functools.cache  # noqa: B019 - one instance per process, never freed
    def finish(self, owned: bool) -> Any:
        e = _EVENTS.c
        statement = update(_EVENTS).where(e.event_id == bindparam("f_event"))
        if owned:
            statement = statement.where(e.owner == bindparam("f_owner"), e.status == "claimed")
        return statement.values(**_values(_EVENTS, "f", "status", "conversation_id", "updated_at"))

    @functools.cached_property
    def locate(self) -> Any:
        e = _EVENTS.c
        return (
            update(_EVENTS)
            .where(e.event_id == bindparam("l_event"), e.owner == bindparam("l_owner"), e.status == "claimed")
            .values(**_values(_EVENTS, "l", "reply", "updated_at"))
        )

    @functools.cached_property
    def new_messages(self) -> Any:
        """Messages in one multi-row INSERT, their ids returned in the order given (PostgreSQL)."""
        return _MESSAGES.insert().returning(_MESSAGES.c.id, sort_by_parameter_order=True)

    @functools.cached_property
    def new_messages_sqlite(self) -> Any:
        """On SQLite SQLAlchemy would send one INSERT per row to return ids in order: one multi-row INSERT
        whose ids are sorted instead (the write lock is held, and an INTEGER PRIMARY KEY takes the next
        rowid row after row, so ids ascend in the order the rows were given)."""
        return _MESSAGES.insert().returning(_MESSAGES.c.id)

    @functools.cached_property
    def new_attachments(self) -> Any:
        return _ATTACHMENTS.insert()

    @functools.cached_property
    def new_audit(self) -> Any:
        return _MODERATION.insert()

    @functools.cached_property
    def count_setting_change(self) -> Any:
        s = _SETTING_CHANGES.c
        return update(_SETTING_CHANGES).where(s.id == SETTING_CHANGES_ROW).values(changes=s.changes + 1)

    @functools.cached_property
    def advisory_lock(self) -> Any:
        return select(func.pg_advisory_xact_lock(bindparam("lock_id", type_=BigInteger())))


_prepared = _Prepared()


class ConversationRepository:
    """``open`` and ``touch`` run on a Core connection too; the others need a session."""

    def __init__(self, session: Executor) -> None:
        self._session: Any = session

    async def get_or_create(self, key: ConversationKey, started_by: str | None = None) -> Conversation:
        """The conversation of ``key``; a new one records ``started_by`` (an existing one keeps its own)."""
        values = _new_conversation(key, started_by)
        await self._session.execute(_prepared.new_conversation(_dialect(self._session)), values)
        found = await self.find(key)
        assert found is not None
        return found

    async def open(self, key: ConversationKey, started_by: str | None = None) -> tuple[int, str | None]:
        """``open_conversation``."""
        found: tuple[int, str | None] = await self._session.run_sync(open_conversation, key, started_by)
        return found

    async def model(self, key: ConversationKey) -> tuple[int, str | None] | None:
        """The id and model of ``key``'s conversation; None when there is none (a session or a connection)."""
        keyed = {
            "k_platform": key.platform,
            "k_workspace": key.workspace_id,
            "k_channel": key.channel_id,
            "k_thread": key.thread_id,
        }
        row = (await self._session.execute(_prepared.conversation_model, keyed)).one_or_none()
        return (int(row[0]), row[1]) if row is not None else None

    async def find(self, key: ConversationKey) -> Conversation | None:
        keyed = {
            "k_platform": key.platform,
            "k_workspace": key.workspace_id,
            "k_channel": key.channel_id,
            "k_thread": key.thread_id,
        }
        result = await self._session.execute(_prepared.conversation, keyed)
        found: Conversation | None = result.scalar_one_or_none()
        return found

    async def touch(self, conversation_id: int) -> None:
        await self._session.run_sync(touch_conversation, conversation_id)


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, message: Message) -> None:
        self._session.add(message)

    async def flush(self) -> None:
        await self._session.flush()

    async def state(self, conversation_id: int) -> tuple[int | None, int]:
        """The newest visible message id and the conversation's history version, in one query."""
        row = (
            await self._session.execute(_prepared.history_state, {"s_conversation": conversation_id})
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
    setting_changes: int | None  # ``count_setting_change`` so far (None: the row is missing)


class EventRepository:
    """Runs on a session or a Core connection (the turn's hot path)."""

    def __init__(self, session: Executor) -> None:
        self._session: Any = session

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
        """``claim_event``."""
        found: int | None = await self._session.run_sync(
            lambda db: claim_event(
                db, event_id, platform, key=key, user_id=user_id, owner=owner, status=status
            )
        )
        return found

    async def queue(self, key: ConversationKey, user_id: str) -> QueueRow:
        """``queue_of``."""
        row: QueueRow = await self._session.run_sync(queue_of, key, user_id)
        return row

    async def finish(
        self, event_id: str, *, status: str, conversation_id: int | None, owner: str | None = None
    ) -> bool:
        """``finish_event``."""
        done: bool = await self._session.run_sync(
            lambda db: finish_event(db, event_id, status=status, conversation_id=conversation_id, owner=owner)
        )
        return done

    async def locate(self, event_id: str, owner: str, reply: dict[str, str]) -> None:
        """``locate_reply``."""
        await self._session.run_sync(locate_reply, event_id, owner, reply)

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


# ---- the turn's hot path, synchronous: inside one greenlet per transaction (``Database.transact``) ------


def _sync_dialect(db: SyncExecutor) -> str:
    if isinstance(db, Connection):
        return db.dialect.name
    return db.get_bind().dialect.name


def claim_event(
    db: SyncExecutor,
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
    values = {
        "c_event_id": event_id,
        "c_platform": platform,
        "c_status": status,
        "c_user_id": user_id,
        "c_owner": owner,
        "c_created_at": now,
        "c_updated_at": now,
        "c_workspace_id": key.workspace_id if key is not None else None,
        "c_channel_id": key.channel_id if key is not None else None,
        "c_thread_id": key.thread_id if key is not None else None,
    }
    found = db.execute(_prepared.claim(_sync_dialect(db)), values).scalar_one_or_none()
    return int(found) if found is not None else None


def queue_of(db: SyncExecutor, key: ConversationKey, user_id: str) -> QueueRow:
    """In one statement: the earliest unfinished turn of the conversation of ``key`` (its claim's row id),
    the conversation as it is now (id, model, history state; None: not created yet), ``user_id``'s ban, and
    the count of setting changes."""
    keyed = {
        "q_platform": key.platform,
        "q_workspace": key.workspace_id,
        "q_channel": key.channel_id,
        "q_thread": key.thread_id,
        "q_user": user_id,
    }
    row = db.execute(_prepared.queue, keyed).one()
    ban = (row[6], row[7]) if row[5] is not None else None
    changes = int(row[8]) if row[8] is not None else None
    return QueueRow(row[0], row[1], row[2], int(row[3] or 0), row[4], ban, changes)


def finish_event(
    db: SyncExecutor, event_id: str, *, status: str, conversation_id: int | None, owner: str | None = None
) -> bool:
    """Mark a claimed event finished; with ``owner``, only while it is still that replica's claim. False
    when nothing was marked (another replica resolved it)."""
    values = {
        "f_event": event_id,
        "f_status": status,
        "f_conversation_id": conversation_id,
        "f_updated_at": utcnow(),
    }
    if owner is not None:
        values["f_owner"] = owner
    result = db.execute(_prepared.finish(owner is not None), values)
    return bool(getattr(result, "rowcount", 0))


def locate_reply(db: SyncExecutor, event_id: str, owner: str, reply: dict[str, str]) -> None:
    """Where a claimed turn's reply is shown (while the claim is still ``owner``'s)."""
    values = {"l_event": event_id, "l_owner": owner, "l_reply": reply, "l_updated_at": utcnow()}
    db.execute(_prepared.locate, values)


def _new_conversation(key: ConversationKey, started_by: str | None) -> dict[str, Any]:
    """The prepared conversation INSERTs' parameters: ``key``'s conversation, started by ``started_by``."""
    now = utcnow()
    return {
        "n_platform": key.platform,
        "n_workspace_id": key.workspace_id,
        "n_channel_id": key.channel_id,
        "n_thread_id": key.thread_id,
        "n_started_by": started_by,
        "n_created_at": now,
        "n_updated_at": now,
    }


def open_conversation(
    db: SyncExecutor, key: ConversationKey, started_by: str | None = None
) -> tuple[int, str | None]:
    """The id and model of ``key``'s conversation, created (by ``started_by``) if there is none: one INSERT
    that returns the new id, and a SELECT only when the conversation was there already."""
    values = _new_conversation(key, started_by)
    new_id = db.execute(_prepared.created_conversation(_sync_dialect(db)), values).scalar_one_or_none()
    if new_id is not None:
        return int(new_id), None
    keyed = {
        "k_platform": key.platform,
        "k_workspace": key.workspace_id,
        "k_channel": key.channel_id,
        "k_thread": key.thread_id,
    }
    row = db.execute(_prepared.conversation_model, keyed).one()
    return int(row[0]), row[1]


def touch_conversation(db: SyncExecutor, conversation_id: int) -> None:
    db.execute(_prepared.touch, {"t_id": conversation_id, "t_updated_at": utcnow()})


def add_messages(db: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert messages (their columns' values) in one statement; their ids, in order."""
    if db.dialect.name == "sqlite":
        result = db.execute(_prepared.new_messages_sqlite, list(rows))
        return sorted(int(row[0]) for row in result)
    return [int(row[0]) for row in db.execute(_prepared.new_messages, list(rows))]


def add_attachments(db: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        db.execute(_prepared.new_attachments, list(rows))


def add_audit(db: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """The guards' decisions (``moderation_events`` columns)."""
    if rows:
        db.execute(_prepared.new_audit, list(rows))


async def count_setting_change(session: Executor) -> None:
    """In the transaction that changes a setting processes cache (a channel policy, a persona, a ban, a
    budget override): the count every turn's claim reads goes up when it commits, so that a process that
    heard no notice of the change (SQLite: another process) drops its caches at its next turn."""
    await session.execute(_prepared.count_setting_change)


def advisory_lock(db: Connection, lock_id: int) -> None:
    """PostgreSQL's transaction-scoped advisory lock on ``lock_id``."""
    db.execute(_prepared.advisory_lock, {"lock_id": lock_id})
