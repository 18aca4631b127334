"""What the model reads (DESIGN.md §3 step 5): system prompt + the summary of the turns that fell out of the
window (when summaries are on, summary.py) + the newest history that fits + the new message, and the CallPlan
the budget holds are sized from."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from core.domain.errors import BadInput
from core.domain.ports import (
    BudgetGate,
    CallPlan,
    HistoryEntry,
    HistoryWindow,
    Persona,
    PersonaLookup,
    ToolRunner,
    TurnMessage,
)
from core.domain.types import IncomingMessage
from core.llm.tokens import REPLY_PRIMING, TokenCounter, context_window
from core.turn.config import TurnConfig
from core.turn.summary import StoredSummary, SummaryStore, summary_slot, summary_tokens, summary_wire

_FIXED_CACHE = 64  # (model, system prompt, tools) token counts kept: personas and tool policies vary them
FRAMING_SLACK = 64  # the assistant message's own framing around its tool calls


def system_prompt(base: str, persona: Persona | None) -> str:
    """The system message of a turn: THREADWISE_SYSTEM_PROMPT first, then the persona of the channel (or of
    the workspace) if one is set. A persona extends the global prompt, never replaces it."""
    if persona is None:
        return base
    where = "this workspace" if persona.scope == "workspace" else "this channel"
    return f"{base}\n\nIn {where}: {persona.prompt}"


@dataclass(frozen=True, slots=True)
class TurnContext:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    prompt_tokens: int
    last_id: int | None  # the newest stored message the history ends with
    plan: CallPlan  # the most calls the turn may make; the first with ``prompt_tokens``
    tool_tokens: int = 0  # what the tool definitions add to ``prompt_tokens``
    history: tuple[HistoryEntry, ...] = ()  # the stored messages in ``messages``
    summary: StoredSummary | None = None  # sent in place of the messages up to its ``through_id``
    summary_tokens: int = 0  # what the summary message adds to ``prompt_tokens``

    @property
    def model(self) -> str:
        return self.plan.model

    def without_tools(self) -> TurnContext:
        """The same messages offering no tools: one call, which answers in words."""
        prompt = self.prompt_tokens - self.tool_tokens
        plan = dataclasses.replace(self.plan, prompt_tokens=prompt, rounds=1, growth_per_round=0)
        return dataclasses.replace(self, tools=[], prompt_tokens=prompt, plan=plan, tool_tokens=0)


@dataclass(frozen=True, slots=True)
class _Room:
    """How many tokens history may use this turn (``budget``), and at most in any turn (``ceiling``)."""

    fixed: int
    budget: int
    ceiling: int
    tools: int  # tokens of the tool definitions, part of ``fixed``


class ContextBuilder:
    def __init__(
        self,
        counter: TokenCounter,
        config: TurnConfig,
        history: HistoryWindow,
        budget: BudgetGate,
        tools: ToolRunner | None,
        summaries: SummaryStore | None = None,
        personas: PersonaLookup | None = None,
    ) -> None:
        self._summaries = summaries  # None: plain trimming
        self._personas = personas
        self._counter = counter
        self._config = config
        self._history = history
        self._budget = budget
        self._tools = tools
        self._fixed: dict[tuple[str, str, str], tuple[int, int]] = {}  # see ``_fixed_tokens``

    async def build(
        self, message: IncomingMessage, conversation_id: int, model: str, user: TurnMessage
    ) -> TurnContext:
        """The messages of the first model call of the turn; raises BadInput when the new message alone does
        not fit the model's window."""
        persona = await self._personas.persona(message.key) if self._personas is not None else None
        system = {"role": "system", "content": system_prompt(self._config.system_prompt, persona)}
        tools = list(await self._tools.definitions(message)) if self._tools else []
        room = self._room(model, system, tools, user)
        history, last_id = await self._history.window(
            conversation_id, model, room.budget, ceiling=room.ceiling
        )
        # No visible message, no summary of any (hiding or deleting messages invalidates the summary)
        summary = (
            await self._summaries.current(conversation_id)
            if self._summaries and last_id is not None
            else None
        )
        summarised: list[dict[str, Any]] = []
        summary_size = 0
        if summary is not None:
            history = _after(history, summary.through_id)
            summarised = [summary_wire(summary.text)]
            summary_size = summary_tokens(self._counter, model, summary)
        messages = [system, *summarised, *(entry.wire for entry in history), user.wire]
        prompt_tokens = room.fixed + summary_size + sum(entry.tokens for entry in history)
        plan = self._plan(message, model, prompt_tokens, tools)
        return TurnContext(
            messages, tools, prompt_tokens, last_id, plan, room.tools, tuple(history), summary, summary_size
        )

    def _room(
        self, model: str, system: dict[str, Any], tools: list[dict[str, Any]], user: TurnMessage
    ) -> _Room:
        config = self._config
        system_tokens, tool_tokens = self._fixed_tokens(model, system, tools)
        fixed = system_tokens + user.tokens + tool_tokens + REPLY_PRIMING
        window = context_window(model, config.context_windows)
        ceiling = window - config.max_output_tokens - (fixed - user.tokens)
        if config.history_max_tokens is not None:
            ceiling = min(ceiling, config.history_max_tokens)
        budget = min(ceiling, window - config.max_output_tokens - fixed)
        if budget < 0:
            raise BadInput(
                f"Your message is too long for {model}: it needs {fixed} tokens and the model accepts "
                f"{window - config.max_output_tokens} besides the answer. Please shorten it.",
            )
        if self._summaries is not None:  # the history gives up the most a summary can take
            slot = min(budget, summary_slot(self._counter, model, config.summary_max_tokens))
            budget, ceiling = budget - slot, max(0, ceiling - slot)
        return _Room(fixed, budget, ceiling, tool_tokens)

    def _fixed_tokens(
        self, model: str, system: dict[str, Any], tools: list[dict[str, Any]]
    ) -> tuple[int, int]:
        """Tokens of the system message and of the tool definitions: the same few values turn after turn,
        so counted once per model and value (the ``_FIXED_CACHE`` most recent kept)."""
        key = (model, str(system["content"]), json.dumps(tools) if tools else "")
        found = self._fixed.get(key)
        if found is None:
            found = (
                self._counter.count_message(model, system, []),
                sum(self._counter.count_text(model, json.dumps(tool)) for tool in tools),
            )
            if len(self._fixed) >= _FIXED_CACHE:
                self._fixed.pop(next(iter(self._fixed)))
            self._fixed[key] = found
        return found

    def _plan(
        self, message: IncomingMessage, model: str, prompt_tokens: int, tools: list[dict[str, Any]]
    ) -> CallPlan:
        """The turn's model calls at most: every tool round, then an answer in words (fewer when the
        per-turn cap cannot cover them all), and how much each tool round may grow the prompt."""
        config = self._config
        rounds = config.max_tool_rounds + 1 if tools else 1
        growth = config.max_output_tokens + config.tool_round_tokens + FRAMING_SLACK if tools else 0
        plan = CallPlan(message, model, prompt_tokens, config.max_output_tokens, rounds, growth)
        return dataclasses.replace(plan, rounds=max(1, self._budget.affordable_rounds(plan)))


def _after(history: list[HistoryEntry], through_id: int) -> list[HistoryEntry]:
    """The history after the summarised messages, from a user message on (never mid-turn)."""
    kept = [entry for entry in history if entry.message_id > through_id]
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept
