"""The guards of a turn (DESIGN.md §3 step 4), run in order: ban, rate limit, input limits, redaction,
injection signals, input moderation. Each returns the message to use (e.g. redacted) or raises the BotError
that refuses the turn.

``admission`` are the guards that need only who is asking and what the platform's event says (ban, rate limit,
input limits): adapters run them through ``admit`` before they download a file or call the platform for a user
(DESIGN.md §3 step 1). The turn runs the whole chain again; the rate limit counts one event once."""

from __future__ import annotations

from collections.abc import Sequence

from core.domain.ports import TurnGuard
from core.domain.types import IncomingMessage


class GuardChain:
    def __init__(self, guards: Sequence[TurnGuard] = (), *, admission: Sequence[TurnGuard] = ()) -> None:
        self._guards = tuple(guards)
        self._admission = tuple(admission)

    async def admit(self, message: IncomingMessage) -> None:
        """Raise the BotError of the first identity-only guard refusing ``message`` (sent without files)."""
        for guard in self._admission:
            await guard.check(message)

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        for guard in self._guards:
            message = await guard.check(message)
        return message

    def __len__(self) -> int:
        return len(self._guards)
