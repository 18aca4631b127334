"""The guards of a turn (DESIGN.md §3 step 4), run in order: ban, rate limit, input limits, redaction,
injection signals, input moderation. Each returns the message to use (e.g. redacted) or raises the BotError
that refuses the turn."""

from __future__ import annotations

from collections.abc import Sequence

from core.domain.ports import TurnGuard
from core.domain.types import IncomingMessage


class GuardChain:
    def __init__(self, guards: Sequence[TurnGuard] = ()) -> None:
        self._guards = tuple(guards)

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        for guard in self._guards:
            message = await guard.check(message)
        return message

    def __len__(self) -> int:
        return len(self._guards)
