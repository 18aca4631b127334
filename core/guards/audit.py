"""The audit of every guard decision (moderation, redaction, injection): rows in ``moderation_events``, and a
notice on the mod log for what was flagged or blocked.

During a turn the rows are not written on their own: the turn opens an ``AuditBuffer`` (``buffering``) and
its decisions are written in the turn's own transaction (the answered turn's, or its failure record's).
Outside a turn (a command), or once the turn's buffer is closed, a decision is written in its own
transaction."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from core.db.models import ModerationEvent
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.ports import GuardRecord
from core.domain.types import IncomingMessage
from core.guards.modlog import ModerationNotice, ModLog
from core.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # allow | flag | block | unavailable
    categories: tuple[str, ...] = ()  # categories at or over their flag threshold
    scores: Mapping[str, float] = field(default_factory=dict)


class AuditBuffer:
    """The guard decisions of one turn, to be written with it. Once ``close``d, decisions are written at once
    (a task of the turn that outlives it loses nothing)."""

    def __init__(self) -> None:
        self.records: list[GuardRecord] = []
        self.open = True

    def close(self) -> tuple[GuardRecord, ...]:
        """Stop buffering; the decisions buffered so far, for the turn's transaction to write."""
        self.open = False
        return tuple(self.records)


_buffer: ContextVar[AuditBuffer | None] = ContextVar("threadwise_audit_buffer", default=None)


@contextmanager
def buffering(buffer: AuditBuffer) -> Iterator[AuditBuffer]:
    """Decisions recorded in this context (and tasks started from it) go to ``buffer``."""
    token = _buffer.set(buffer)
    try:
        yield buffer
    finally:
        _buffer.reset(token)


def audit_row(record: GuardRecord) -> ModerationEvent:
    return ModerationEvent(**audit_values(record))


def audit_values(record: GuardRecord) -> dict[str, Any]:
    """A guard's decision as the columns of its ``moderation_events`` row."""
    return {
        "platform": record.platform,
        "workspace_id": record.workspace_id,
        "channel_id": record.channel_id,
        "user_id": record.user_id,
        "direction": record.direction,
        "action": record.action,
        "categories": list(record.categories),
        "scores": dict(record.scores),
        "redactions": list(record.redactions),
        "content": record.content,
        "created_at": record.created_at,
    }


class ModerationAudit:
    """Writes decisions to ``moderation_events`` (scores and categories; raw content only if allowed)."""

    def __init__(
        self,
        database: Database,
        *,
        keep_content: bool = False,
        clock: Clock = utc_now,
        modlog: ModLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._db = database
        self._keep_content = keep_content
        self._clock = clock
        self._modlog = modlog

    async def record(
        self,
        message: IncomingMessage,
        direction: str,
        decision: Decision,
        *,
        content: str = "",
        redactions: Sequence[str] = (),
    ) -> None:
        if self._metrics is not None:
            for category in decision.categories or ("none",):
                self._metrics.moderation.labels(decision.action, category).inc()
            for rule in redactions:
                self._metrics.moderation.labels("redact", rule).inc()
        record = GuardRecord(
            platform=message.key.platform,
            workspace_id=message.key.workspace_id,
            channel_id=message.key.channel_id,
            user_id=message.user.user_id,
            direction=direction,
            action=decision.action,
            categories=tuple(decision.categories),
            scores={c: round(s, 6) for c, s in decision.scores.items() if s >= 0.01},
            redactions=tuple(redactions),
            content=content if self._keep_content and decision.action in ("flag", "block") else None,
            created_at=self._clock(),
        )
        buffer = _buffer.get()
        if buffer is not None and buffer.open:
            buffer.records.append(record)
        else:
            async with self._db.unit_of_work() as session:
                session.add(audit_row(record))
        if self._modlog is not None and decision.action in ("flag", "block"):
            key = message.key
            self._modlog.notify(
                ModerationNotice(
                    key.platform,
                    key.workspace_id,
                    key.channel_id,
                    message.user.user_id,
                    direction,
                    decision.action,
                    tuple(decision.categories),
                    dict(decision.scores),
                )
            )
