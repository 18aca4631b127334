"""The audit of every guard decision (moderation, redaction, injection): rows in ``moderation_events``, and a
notice on the mod log for what was flagged or blocked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.db.models import ModerationEvent
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.types import IncomingMessage
from core.guards.modlog import ModerationNotice, ModLog
from core.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # allow | flag | block | unavailable
    categories: tuple[str, ...] = ()  # categories at or over their flag threshold
    scores: Mapping[str, float] = field(default_factory=dict)


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
        async with self._db.unit_of_work() as session:
            session.add(
                ModerationEvent(
                    platform=message.key.platform,
                    workspace_id=message.key.workspace_id,
                    channel_id=message.key.channel_id,
                    user_id=message.user.user_id,
                    direction=direction,
                    action=decision.action,
                    categories=list(decision.categories),
                    scores={c: round(s, 6) for c, s in decision.scores.items() if s >= 0.01},
                    redactions=list(redactions),
                    content=content if self._keep_content and decision.action in ("flag", "block") else None,
                    created_at=self._clock(),
                )
            )
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
