"""The mod log: flagged and blocked decisions are announced to a channel the adapters choose (optional).

The core only says what happened (never the flagged text); each adapter registers a sink that posts it to its
platform. Notices are sent in the background so a slow chat API never delays a turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModerationNotice:
    platform: str
    workspace_id: str
    channel_id: str
    user_id: str
    direction: str  # input | output
    action: str  # flag | block
    categories: tuple[str, ...]
    scores: Mapping[str, float] = field(default_factory=dict)

    def describe(self, user: str | None = None, channel: str | None = None) -> str:
        """One line for the mod-log channel; ``user``/``channel`` as the platform writes a mention."""
        top = max(self.scores.items(), key=lambda item: item[1], default=None)
        score = f" (top: {top[0]} {top[1]:.2f})" if top else ""
        what = ", ".join(self.categories) or "policy"
        verb = "blocked" if self.action == "block" else "flagged"
        source = "a message from" if self.direction == "input" else "an answer to"
        who = user or f"user {self.user_id}"
        where = channel or f"channel {self.channel_id}"
        return f"Moderation {verb} {source} {who} in {where}: {what}{score}"


Sink = Callable[[ModerationNotice], Awaitable[None]]


class ModLog:
    def __init__(self) -> None:
        self._sinks: dict[str, Sink] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def register(self, platform: str, sink: Sink) -> None:
        self._sinks[platform] = sink

    def unregister(self, platform: str) -> None:
        self._sinks.pop(platform, None)

    def notify(self, notice: ModerationNotice) -> None:
        sink = self._sinks.get(notice.platform)
        if sink is None:
            return
        task = asyncio.create_task(self._send(sink, notice), name="modlog")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for notices in flight (at shutdown, and in tests); a sink's own API timeouts bound this."""
        if self._pending:
            await asyncio.wait(list(self._pending))

    @staticmethod
    async def _send(sink: Sink, notice: ModerationNotice) -> None:
        try:
            await sink(notice)
        except Exception:
            log.exception("could not post to the mod log of %s", notice.platform)
