"""The budget step of a turn (DESIGN.md §3 step 6): the worst case of the model calls is held before the first
one; when the budget cannot cover the conversation's model, the fallback model answers (with a note)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.domain.errors import QuotaExceeded
from core.domain.ports import BudgetGate, Hold, TurnMessage
from core.domain.types import IncomingMessage
from core.llm.tokens import TokenCounter
from core.turn.context import ContextBuilder, TurnContext
from core.turn.user_message import build_user_message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reserved:
    """The model that answers, the context built for it and the budget held for its calls."""

    user: TurnMessage  # the new message, counted for ``context.model``
    context: TurnContext
    hold: Hold
    notes: list[str]  # shown under the answer


class Reservation:
    def __init__(
        self, budget: BudgetGate, contexts: ContextBuilder, counter: TokenCounter, fallback_model: str | None
    ) -> None:
        self._budget = budget
        self._contexts = contexts
        self._counter = counter
        self._fallback = fallback_model

    async def reserve(
        self, message: IncomingMessage, conversation_id: int, model: str, user: TurnMessage
    ) -> Reserved:
        """Build the context for ``model`` and hold its worst case; if that is refused, the same for the
        fallback model. Raises QuotaExceeded when no candidate fits."""
        candidates = [model] if not self._fallback or self._fallback == model else [model, self._fallback]
        for index, candidate in enumerate(candidates):
            if candidate != model:
                await self._counter.preload(candidate)  # its encoding loads off the loop
                user = (await build_user_message(message, self._counter, candidate)).message
            context = await self._contexts.build(message, conversation_id, candidate, user)
            try:
                hold = await self._budget.reserve(context.plan)
            except QuotaExceeded:
                if index == len(candidates) - 1:
                    raise
                log.info(
                    "budget cannot cover %s for %s; trying %s", candidate, message.event_id, self._fallback
                )
                continue
            notes = (
                [f"Answered with {candidate}: the budget does not cover {model} right now."] if index else []
            )
            return Reserved(user, context, hold, notes)
        raise AssertionError("unreachable: the last candidate raises")
