"""The budget step of a turn (DESIGN.md §3 step 6): the first model call's worst case is held before it, and
when tools are offered, one answer in words after it; each further call extends the hold (``HeldBudget``).
When the budget covers the first call only, the turn offers no tools; when it cannot cover the conversation's
model at all, the fallback model answers (with a note)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.domain.errors import QuotaExceeded
from core.domain.ports import BudgetGate, CallPlan, CallUsage, Hold, TurnMessage
from core.domain.types import IncomingMessage
from core.llm.tokens import TokenCounter
from core.turn.context import ContextBuilder, TurnContext
from core.turn.user_message import build_user_message

log = logging.getLogger(__name__)

NO_TOOLS_NOTE = "Answered without tools: the budget left covers one model call right now."


class HeldBudget:
    """What a turn holds of its budgets; ``cover`` extends it before a further model call."""

    def __init__(self, gate: BudgetGate, plan: CallPlan, hold: Hold) -> None:
        self._gate = gate
        self._plan = plan
        self.hold = hold

    async def cover(self, usages: Sequence[CallUsage], prompt_tokens: int, calls: int) -> None:
        """Hold what ``usages`` cost and the worst case of ``calls`` more calls, the next one reading
        ``prompt_tokens``; raises QuotaExceeded (the hold stays as it was)."""
        plan = replace(self._plan, prompt_tokens=prompt_tokens, rounds=calls)
        self.hold = await self._gate.extend(self.hold, usages, plan)

    async def keep(self, seconds: float) -> None:
        """The turn waits up to ``seconds`` for a person: the hold stays (not swept as abandoned)."""
        await self._gate.keep(self.hold, seconds)


@dataclass(frozen=True, slots=True)
class Reserved:
    """The model that answers, the context built for it and the budget held for its calls."""

    user: TurnMessage  # the new message, counted for ``context.model``
    context: TurnContext
    budget: HeldBudget
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
        """Build the context for ``model`` and hold its first call (and, with tools, one answer after it);
        failing that, its first call without tools; failing both, the same for the fallback model. Raises
        the last QuotaExceeded when nothing fits."""
        candidates = [model] if not self._fallback or self._fallback == model else [model, self._fallback]
        refused: QuotaExceeded | None = None
        for index, candidate in enumerate(candidates):
            if candidate != model:
                await self._counter.preload(candidate)  # its encoding loads off the loop
                user = (await build_user_message(message, self._counter, candidate)).message
            context = await self._contexts.build(message, conversation_id, candidate, user)
            for option in _options(context):
                plan = replace(option.plan, rounds=min(2, option.plan.rounds))
                try:
                    hold = await self._budget.reserve(plan)
                except QuotaExceeded as exc:
                    refused = exc
                    continue
                notes = []
                if index:
                    notes.append(f"Answered with {candidate}: the budget does not cover {model} right now.")
                if option.tools != context.tools:
                    notes.append(NO_TOOLS_NOTE)
                return Reserved(user, option, HeldBudget(self._budget, option.plan, hold), notes)
            log.info("budget cannot cover %s for %s", candidate, message.event_id)
        assert refused is not None
        raise refused


def _options(context: TurnContext) -> list[TurnContext]:
    """What to try holding, best first: tool rounds and an answer, then one call without tools."""
    if context.tools and context.plan.rounds > 1:
        return [context, context.without_tools()]
    return [context]
