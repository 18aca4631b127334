"""The summary step of a turn (issue 16, item 3), between the budget hold and the model call: when turns have
fallen out of the window since the stored summary, one model call (``THREADWISE_SUMMARY_MODEL``, default the
model that answers) folds them into it, and the turn's context is rebuilt with the new summary in their place.
It folds in the oldest quarter of the kept history as well, so a thread past its window makes a summary call
every few turns, not at every turn.

The call is a model call like the others: its worst case is held first, on top of the turn's own hold (when
the budget cannot cover both, this turn trims plainly), and its usage joins the turn's usages, so it is
charged in the transaction that stores the turn. It gets at most half the time the turn has left; when it
fails or times out the turn trims plainly and goes on. The first summary of a thread adds a note under the
answer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from core.domain.errors import QuotaExceeded
from core.domain.ports import BudgetGate, CallUsage, ModelClient
from core.domain.types import IncomingMessage
from core.llm.tokens import REPLY_PRIMING, TokenCounter
from core.llm.types import Usage
from core.turn.config import TurnConfig
from core.turn.context import ContextBuilder, TurnContext
from core.turn.reservation import HeldBudget, Reserved
from core.turn.summary import (
    SUMMARISED_NOTE,
    StoredSummary,
    SummaryStore,
    summary_request,
    summary_slot,
    summary_wire,
)

log = logging.getLogger(__name__)

FOLD_SHARE = 4  # a summary also folds in the oldest 1/FOLD_SHARE of the history kept, so it is not redone
# at every turn once a thread is past its window


@dataclass(frozen=True, slots=True)
class _Call:
    conversation_id: int
    model: str
    messages: list[dict[str, Any]]
    prompt_tokens: int  # exact, as ``model`` counts them
    through: int  # the newest message it summarises


class Summariser:
    def __init__(
        self,
        llm: ModelClient,
        counter: TokenCounter,
        budget: BudgetGate,
        store: SummaryStore,
        contexts: ContextBuilder,
        config: TurnConfig,
    ) -> None:
        self._llm = llm
        self._counter = counter
        self._budget = budget
        self._store = store
        self._contexts = contexts
        self._config = config

    async def refresh(
        self,
        message: IncomingMessage,
        conversation_id: int,
        reserved: Reserved,
        usages: list[CallUsage],
        deadline: float | None,
    ) -> Reserved:
        """``reserved`` with the turns that fell out of its window summarised (its usage appended to
        ``usages``, the hold raised to cover it); ``reserved`` unchanged when nothing fell out, or when the
        budget, the time or the summary call does not allow it."""
        context = reserved.context
        call = await self._next_call(conversation_id, context)
        if call is None:
            return reserved
        if not await self._hold(message, reserved, usages, call):
            return reserved
        text = await self._summarise(message, call, usages, deadline)
        if not text or not await self._save(conversation_id, context.model, text, call.through):
            return reserved
        rebuilt = await self._rebuilt(message, conversation_id, reserved)
        notes = reserved.notes if context.summary is not None else [*reserved.notes, SUMMARISED_NOTE]
        held = HeldBudget(self._budget, rebuilt.plan, reserved.budget.hold)
        return Reserved(reserved.user, rebuilt, held, notes)

    async def _next_call(self, conversation_id: int, context: TurnContext) -> _Call | None:
        """The summary call to make now (None: nothing fell out of the window since the summary)."""
        before = _fold_before(context)
        if before is None:
            return None
        previous = context.summary
        after = previous.through_id if previous is not None else None
        dropped = await self._store.dropped(conversation_id, after, before)
        if not dropped or (context.history and dropped[0].id >= context.history[0].message_id):
            return None
        model = self._config.summary_model or context.model
        await self._counter.preload(model)
        request = summary_request(self._counter, model, previous, dropped, self._config.summary_input_tokens)
        if request is None:
            return None
        messages, through = request
        prompt = sum(self._counter.count_message(model, m, []) for m in messages) + REPLY_PRIMING
        return _Call(conversation_id, model, messages, prompt, through)

    async def _hold(
        self, message: IncomingMessage, reserved: Reserved, usages: list[CallUsage], call: _Call
    ) -> bool:
        """Raise the turn's hold to cover the summary call's worst case on top of the turn's first call (and
        answer) with the largest summary; False when the budget cannot cover both."""
        max_tokens = self._config.summary_max_tokens
        worst = CallUsage(call.model, Usage(call.prompt_tokens, 0, max_tokens), call.conversation_id)
        context = reserved.context
        slot = summary_slot(self._counter, context.model, max_tokens)
        answer = replace(
            context.plan,
            prompt_tokens=context.prompt_tokens - context.summary_tokens + slot,
            rounds=min(2, context.plan.rounds),
        )
        try:
            reserved.budget.hold = await self._budget.extend(reserved.budget.hold, [*usages, worst], answer)
        except QuotaExceeded:
            log.info("no budget for a summary in %s: history trimmed", message.event_id)
            return False
        return True

    async def _summarise(
        self, message: IncomingMessage, call: _Call, usages: list[CallUsage], deadline: float | None
    ) -> str:
        """The new summary ("" when the call failed or ran out of its time); its usage joins ``usages``."""
        try:
            async with asyncio.timeout_at(_cutoff(deadline)):
                completion = await self._llm.stream(
                    model=call.model,
                    messages=call.messages,
                    max_output_tokens=self._config.summary_max_tokens,
                    deadline=deadline,
                )
        except Exception as exc:  # a summary never fails the turn
            log.warning("summary call failed in %s (%r): history trimmed", message.event_id, exc)
            return ""
        written = self._counter.count_text(call.model, completion.text)
        usages.append(
            CallUsage(
                call.model, completion.usage or Usage(call.prompt_tokens, 0, written), call.conversation_id
            )
        )
        return completion.text.strip()

    async def _save(self, conversation_id: int, model: str, text: str, through: int) -> bool:
        text = self._counter.truncate(model, text, self._config.summary_max_tokens)
        tokens = self._counter.count_message(model, summary_wire(text), [])
        summary = StoredSummary(text, through, tokens, self._counter.encoding_for(model))
        try:
            await self._store.save(conversation_id, summary)
        except Exception:
            log.exception("could not store the summary of conversation %s", conversation_id)
            return False
        return True

    async def _rebuilt(
        self, message: IncomingMessage, conversation_id: int, reserved: Reserved
    ) -> TurnContext:
        """The context of ``reserved`` again, with the stored summary (the same option: tools or none)."""
        context = reserved.context
        rebuilt = await self._contexts.build(message, conversation_id, context.model, reserved.user)
        if not context.tools and rebuilt.tools:
            rebuilt = rebuilt.without_tools()
        if rebuilt.plan.rounds > context.plan.rounds:
            rebuilt = replace(rebuilt, plan=replace(rebuilt.plan, rounds=context.plan.rounds))
        return rebuilt


def _fold_before(context: TurnContext) -> int | None:
    """Where the summary should end this time: before the history the context keeps, less its oldest
    quarter (whole turns), so that the next turns fit without another summary call. None: no messages."""
    history = context.history
    if not history:  # no history fits: everything up to the newest message fell out
        return context.last_id + 1 if context.last_id is not None else None
    share = sum(entry.tokens for entry in history) // FOLD_SHARE
    folded = 0
    for entry in history:
        if entry.role == "user" and folded >= share:
            return entry.message_id
        folded += entry.tokens
    return history[0].message_id


def _cutoff(deadline: float | None) -> float | None:
    """Half the time the turn has left: the answer keeps the other half."""
    if deadline is None:
        return None
    now = asyncio.get_running_loop().time()
    return now + max(0.0, deadline - now) / 2
