"""Typed ORM models (DESIGN.md §4). Money is integer micro-dollars; every per-turn query is indexed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, BigId, Json, UTCDateTime, utcnow


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "workspace_id", "channel_id", "thread_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(100))
    # The user id (on ``platform``) whose message or command opened the conversation: with workspace admins
    # and operators, the only one who may reset it or change its model. None: not known (older rows).
    started_by: Mapped[str | None] = mapped_column(String(64))
    # Bumped whenever messages are hidden or deleted (reset, erasure, retention) so that every replica's
    # cached history window of the conversation is reloaded.
    history_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Message(Base):
    """One chat-completion message. ``content`` is a list of parts:

    ``{"type": "text", "text": …}`` or ``{"type": "image", "attachment": <position>, "detail": "auto"}``.
    ``status`` is ``ok``; a failed turn stores its user message and an assistant marker as ``failed``, so
    history stays paired and the model never sees them.
    """

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_status_id", "conversation_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    tool_call_id: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(100))
    token_count: Mapped[int] = mapped_column(Integer)
    token_encoding: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="ok")
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    event_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.position", cascade="all, delete-orphan"
    )


class ConversationSummary(Base):
    """The running summary of a conversation's oldest turns, sent in their place once they no longer fit
    (``THREADWISE_HISTORY_SUMMARY``). It covers the visible messages up to ``through_message_id``; it is used
    only while ``history_version`` matches the conversation's (a reset or an erasure makes it stale)."""

    __tablename__ = "conversation_summaries"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text)
    through_message_id: Mapped[int] = mapped_column(BigInteger)
    token_count: Mapped[int] = mapped_column(Integer)  # of the summary message, in ``token_encoding``
    token_encoding: Mapped[str] = mapped_column(String(32))
    history_version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("message_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    message: Mapped[Message] = relationship(back_populates="attachments")


class ProcessedEvent(Base):
    """Idempotency: one row per platform event; the unique constraint catches concurrent duplicates."""

    __tablename__ = "processed_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    # claimed (queued or running) | done | failed | interrupted (its replica died or shut down mid-turn)
    status: Mapped[str] = mapped_column(String(16), default="claimed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # A turn's conversation (None for command deliveries), who sent it, which replica runs it and where
    # its reply is shown (a platform's JSON reference, once a message of it is posted).
    workspace_id: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(64))
    thread_id: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(64))
    reply: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # Who clicked Stop on the turn's answer (a display name), when the click reached another replica: kept
    # so that a replica whose listening connection was down when the stop notice went out finds it later.
    stopped_by: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index(
            "ix_processed_events_claimed",
            "platform",
            "workspace_id",
            "channel_id",
            "thread_id",
            "id",
            sqlite_where=text("status = 'claimed'"),
            postgresql_where=text("status = 'claimed'"),
        ),
        Index("ix_processed_events_user_place", "platform", "workspace_id", "channel_id", "user_id", "id"),
    )


class Replica(Base):
    """A running process and its heartbeat: turns owned by a replica that stopped beating are resolved."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageRecord(Base):
    """The priced ledger: one row per LLM call and per generated image."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_user_at", "platform", "user_id", "created_at"),
        Index("ix_usage_records_channel_at", "platform", "channel_id", "created_at"),
        Index("ix_usage_records_workspace_at", "platform", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    user_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # chat | image
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Budget(Base):
    """An admin override of a limit for one scope/subject/period (defaults come from settings)."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("scope", "subject", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # user | channel | workspace | global
    subject: Mapped[str] = mapped_column(String(160))  # e.g. "slack:U123", "discord:guild-id", "*"
    period: Mapped[str] = mapped_column(String(8))  # day | month
    limit_micros: Mapped[int | None] = mapped_column(BigInteger)
    limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    set_by: Mapped[str | None] = mapped_column(String(160))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BudgetCounter(Base):
    """Spend and holds of one limited budget in one period (``period_key`` is ``2026-11-22`` or ``2026-11``).

    Reservations lock these rows (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so a
    check-and-hold is atomic and a turn costs a few indexed row reads, however long the ledger grows.
    """

    __tablename__ = "budget_counters"
    __table_args__ = (UniqueConstraint("scope", "subject", "period", "period_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(160))
    period: Mapped[str] = mapped_column(String(8))
    period_key: Mapped[str] = mapped_column(String(10))
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class Reservation(Base):
    """Worst-case cost held on budget counters while a call runs; settled or released, expires if left."""

    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    counter_ids: Mapped[list[int]] = mapped_column(Json)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    event_id: Mapped[str | None] = mapped_column(String(255), index=True)  # the turn it holds for


class Ban(Base):
    __tablename__ = "bans"
    __table_args__ = (UniqueConstraint("platform", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    banned_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ModerationEvent(Base):
    __tablename__ = "moderation_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # input | output | tool (a tool result redacted)
    action: Mapped[str] = mapped_column(String(16))  # allow | flag | block | unavailable
    categories: Mapped[list[str]] = mapped_column(Json, default=list)
    scores: Mapped[dict[str, float]] = mapped_column(Json, default=dict)
    redactions: Mapped[list[str]] = mapped_column(Json, default=list)
    content: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AdminAction(Base):
    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(160))
    details: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    allowed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ChannelPolicy(Base):
    """Admin settings of one channel: the tools the model may use there and its moderation thresholds."""

    __tablename__ = "channel_policies"
    __table_args__ = (UniqueConstraint("platform", "workspace_id", "channel_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    tools: Mapped[list[str] | None] = mapped_column(Json)  # None: the tools enabled by default
    moderation: Mapped[dict[str, Any] | None] = mapped_column(Json)  # {"flag": 0.3, "block": 0.6} etc.
    # tool-name patterns that need the asker's approval here, on top of THREADWISE_APPROVAL_TOOLS
    approval_tools: Mapped[list[str] | None] = mapped_column(Json)
    set_by: Mapped[str] = mapped_column(String(96))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ToolCallRecord(Base):
    """One tool call made for a turn: which tool, its (redacted) arguments, how long, how it ended."""

    __tablename__ = "tool_calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    tool: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[str] = mapped_column(Text)
    # ok | error | timeout | invalid | unknown | refused | denied | unapproved (not approved in time)
    # | stopped (the answer's Stop button cut it off)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ToolApproval(Base):
    """A tool call waiting for (or given) the asker's approval: what the model wanted to run (arguments
    redacted), and the decision: ``pending`` until the asker or an admin approves or denies it, or it
    ``timed_out``. Any replica records a click here; the waiting turn reads it. ``tool_call_id`` is the
    ``tool_calls`` row of the call once it is recorded."""

    __tablename__ = "tool_approvals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64))  # the asker
    tool: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[str] = mapped_column(Text)  # redacted
    # pending | approved | denied | timed_out | cancelled (shutdown) | unavailable (could not be shown)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_by_name: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tool_call_id: Mapped[int | None] = mapped_column(ForeignKey("tool_calls.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Installation(Base):
    """An app installed into a workspace through OAuth (Slack distribution): its bot token, rotated before it
    expires when the app has token rotation on. One row per app (``client_id``) and workspace or organisation;
    ``""`` where the platform names no enterprise (or, for an organisation-wide install, no team). Deleted
    when the app is uninstalled or its bot token revoked."""

    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("platform", "client_id", "enterprise_id", "team_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str] = mapped_column(String(64))
    enterprise_id: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str] = mapped_column(String(64), index=True)
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean, default=False)
    app_id: Mapped[str | None] = mapped_column(String(64))
    team_name: Mapped[str | None] = mapped_column(String(255))
    enterprise_name: Mapped[str | None] = mapped_column(String(255))
    enterprise_url: Mapped[str | None] = mapped_column(String(255))
    installer_user_id: Mapped[str | None] = mapped_column(String(64))
    bot_token: Mapped[str] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(String(64))
    bot_user_id: Mapped[str | None] = mapped_column(String(64))
    bot_scopes: Mapped[str] = mapped_column(Text, default="")  # comma-separated, as granted
    bot_refresh_token: Mapped[str | None] = mapped_column(Text)  # token rotation only
    bot_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_type: Mapped[str | None] = mapped_column(String(16))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OAuthState(Base):
    """An OAuth ``state`` handed to an installer's browser at /slack/install, valid once until it expires."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PersonaRow(Base):
    """An admin's persona of one channel (``channel_id`` set) or of a whole workspace (``channel_id`` ""):
    text added to the system prompt there, and optionally a default model and a narrower tool list."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("platform", "workspace_id", "channel_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))  # "": the whole workspace
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(128))
    tools: Mapped[list[str] | None] = mapped_column(Json)  # None: the tools the channel offers
    set_by: Mapped[str] = mapped_column(String(96))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnswerFeedback(Base):
    """A 👍 or 👎 on one answer: the answer is its turn's claim (``claim_id``, a processed_events row), the
    voter one user of its platform (one vote each: a second click changes it), the model that answered."""

    __tablename__ = "answer_feedback"
    __table_args__ = (
        UniqueConstraint("claim_id", "user_id"),
        Index("ix_answer_feedback_at", "created_at"),
        Index("ix_answer_feedback_user", "platform", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("processed_events.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    workspace_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    user_id: Mapped[str] = mapped_column(String(64))  # the voter
    vote: Mapped[int] = mapped_column(Integer)  # +1 up, -1 down
    model: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SettingChanges(Base):
    """One row (id 1): how many times a setting that processes cache was changed (a channel policy, a
    persona, a ban, a budget override), bumped in each change's transaction; every turn's claim reads it, and
    a process that finds it moved since its last turn drops those caches (core/db/notice_board.py)."""

    __tablename__ = "setting_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    changes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
