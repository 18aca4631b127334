"""In-memory fakes of the turn's ports (core/domain/ports.py): no database, no HTTP.

Each fake keeps what a user or an operator could observe: the events claimed, the turns stored, the holds
taken, released and settled, the calls the model received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.domain.errors import BotError, ContentBlocked, QuotaExceeded
from core.domain.ports import (
    CallPlan,
    CallUsage,
    ConversationRef,
    FailedTurn,
    FinishedTurn,
    HistoryEntry,
    Hold,
    OnText,
    QueuePlace,
    ToolResult,
)
from core.domain.types import ConversationKey, IncomingMessage
from core.llm.types import Completion, ToolCall, Usage
from core.turn.history import trim


class FakeBudget:
    """A BudgetGate that refuses plans for the models in ``refuse``, holds of more than ``max_calls`` calls
    (a budget that covers only so many calls at once) and, with ``refuse_extensions``, every extension that
    would raise a hold; it keeps every hold it hands out and every extension asked for."""

    def __init__(
        self, *, refuse: Sequence[str] = (), max_calls: int | None = None, refuse_extensions: bool = False
    ) -> None:
        self.refuse = set(refuse)
        self.max_calls = max_calls
        self.refuse_extensions = refuse_extensions
        self.plans: list[CallPlan] = []
        self.holds: list[Hold] = []
        self.extensions: list[tuple[int, CallPlan]] = []  # (calls completed, what was to be covered)
        self.released: list[Hold] = []
        self.settled: list[tuple[Hold, list[CallUsage]]] = []

    async def reserve(self, plan: CallPlan) -> Hold:
        self.plans.append(plan)
        if plan.model in self.refuse:
            raise QuotaExceeded(f"Your daily budget does not cover {plan.model}.")
        if self.max_calls is not None and plan.rounds > self.max_calls:
            raise QuotaExceeded(f"Your daily budget covers {self.max_calls} model call(s).")
        hold = Hold(len(self.holds) + 1, 1000 * plan.rounds, 100 * plan.rounds, plan.message)
        self.holds.append(hold)
        return hold

    async def extend(self, hold: Hold, usages: Sequence[CallUsage], plan: CallPlan) -> Hold:
        """A hold covers its calls at 1000 µ$ each; one that covers ``usages`` and ``plan`` already stays."""
        self.extensions.append((len(usages), plan))
        needed = 1000 * (len(usages) + plan.rounds)
        if needed <= hold.micros:
            return hold
        if self.refuse_extensions or (self.max_calls is not None and needed > 1000 * self.max_calls):
            raise QuotaExceeded("Your daily budget covers no further model call.")
        return Hold(hold.reservation_id, needed, needed // 10, hold.message)

    async def release(self, hold: Hold) -> None:
        self.released.append(hold)

    async def keep(self, hold: Hold, seconds: float) -> None:
        return None

    def affordable_rounds(self, plan: CallPlan) -> int:
        return plan.rounds

    def settle(self, hold: Hold, usages: Sequence[CallUsage]) -> None:
        """What the store calls inside its transaction (``Budgets.settle_in`` for the SQL store)."""
        self.settled.append((hold, list(usages)))

    @property
    def open_holds(self) -> list[Hold]:
        """Holds neither released nor settled: money held forever."""
        closed = {hold.reservation_id for hold in self.released}
        closed |= {hold.reservation_id for hold, _ in self.settled}
        return [hold for hold in self.holds if hold.reservation_id not in closed]


class FakeStore:
    """A TurnStore: a finished turn and its settlement land together, or (``fail_persist``) neither."""

    def __init__(self, budget: FakeBudget | None = None, *, fail_persist: bool = False) -> None:
        self.budget = budget
        self.fail_persist = fail_persist
        self.claimed: set[str] = set()
        self.located: list[tuple[str, dict[str, str]]] = []
        self.turns: list[FinishedTurn] = []
        self.failures: list[FailedTurn] = []
        self.charges: list[tuple[Hold, list[CallUsage]]] = []
        self._next_id = 1

    async def claim(self, message: IncomingMessage) -> QueuePlace | None:
        """One process, no database: every claim is first in its conversation (KeyedLocks orders them)."""
        if message.event_id in self.claimed:
            return None
        self.claimed.add(message.event_id)
        return QueuePlace(len(self.claimed), True, None)

    async def place(self, message: IncomingMessage, position: int) -> QueuePlace:
        return QueuePlace(position, True, None)

    async def locate(self, message: IncomingMessage, where: dict[str, str]) -> None:
        self.located.append((message.event_id, where))

    async def persist(
        self, turn: FinishedTurn, hold: Hold, usages: Sequence[CallUsage]
    ) -> list[HistoryEntry]:
        if self.fail_persist:
            raise RuntimeError("database is gone")
        self.turns.append(turn)
        if self.budget is not None:
            self.budget.settle(hold, usages)
        entries = []
        for item in turn.messages:
            entries.append(HistoryEntry(self._next_id, item.role, item.wire, item.tokens))
            self._next_id += 1
        return entries

    async def charge(self, hold: Hold, usages: Sequence[CallUsage]) -> None:
        self.charges.append((hold, list(usages)))
        if self.budget is not None:
            self.budget.settle(hold, usages)

    async def record_failure(self, turn: FailedTurn) -> None:
        self.failures.append(turn)

    @property
    def stored_roles(self) -> list[list[str]]:
        return [[item.role for item in turn.messages] for turn in self.turns]


class FakeConversations:
    """A ConversationDirectory: one conversation per key, numbered in order of first use."""

    def __init__(self, models: dict[ConversationKey, str] | None = None) -> None:
        self.models = dict(models or {})
        self.ids: dict[ConversationKey, int] = {}

    async def open(self, key: ConversationKey, started_by: str | None = None) -> ConversationRef:
        conversation_id = self.ids.setdefault(key, len(self.ids) + 1)
        return ConversationRef(conversation_id, self.models.get(key))


class FakeHistory:
    """A HistoryWindow over a list per conversation, trimmed like the real one."""

    def __init__(self) -> None:
        self.entries: dict[int, list[HistoryEntry]] = {}

    async def window(
        self, conversation_id: int, model: str, budget: int, *, ceiling: int | None = None
    ) -> tuple[list[HistoryEntry], int | None]:
        entries = self.entries.get(conversation_id, [])
        return trim(entries, budget), entries[-1].message_id if entries else None

    def appended(
        self, conversation_id: int, previous_last_id: int | None, entries: Sequence[HistoryEntry]
    ) -> None:
        self.entries.setdefault(conversation_id, []).extend(entries)


@dataclass(frozen=True)
class Reply:
    """One scripted model response: streamed in ``chunks`` (default: word by word), then ``error`` if set."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    error: BaseException | None = None
    error_after_chars: int = 0  # how much of ``text`` streams before ``error`` is raised
    hang: bool = False  # after ``error_after_chars`` of ``text``, never another byte (a hung provider)


@dataclass
class ModelCall:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: str | None


@dataclass
class FakeModel:
    """A ModelClient answering with scripted replies in order; records each call as it was made."""

    replies: list[Reply]
    calls: list[ModelCall] = field(default_factory=list)

    async def stream(
        self,
        *,
        model: str,
        messages: Sequence[dict[str, Any]],
        max_output_tokens: int,
        on_text: OnText | None = None,
        tools: Sequence[dict[str, Any]] = (),
        tool_choice: str | None = None,
        deadline: float | None = None,
    ) -> Completion:
        self.calls.append(ModelCall(model, list(messages), list(tools), tool_choice))
        reply = self.replies.pop(0)
        cut = reply.error is not None or reply.hang
        shown = reply.text[: reply.error_after_chars] if cut else reply.text
        words = shown.split(" ")
        for index in range(len(words)):
            if on_text is not None and shown:
                await on_text(" ".join(words[: index + 1]))
        if reply.hang:
            await asyncio.Event().wait()
        if reply.error is not None:
            raise reply.error
        return Completion(
            reply.text, model, "tool_calls" if reply.tool_calls else "stop", reply.usage, reply.tool_calls
        )


class FakeTools:
    """A ToolRunner offering one tool, ``lookup``, that answers from ``answers`` by its arguments."""

    DEFINITION: ClassVar[dict[str, Any]] = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.ran: list[ToolCall] = []

    async def definitions(self, message: IncomingMessage) -> Sequence[dict[str, Any]]:
        return [self.DEFINITION]

    async def run(
        self,
        calls: Sequence[ToolCall],
        message: IncomingMessage,
        conversation_id: int | None = None,
        *,
        pause: object = None,
    ) -> Sequence[ToolResult]:
        self.ran.extend(calls)
        return [ToolResult(call.id, self.answers.get(call.arguments, "not found")) for call in calls]


class WordFilter:
    """An OutputModerator that clears text paragraph by paragraph and blocks any containing ``word``."""

    def __init__(self, word: str) -> None:
        self.word = word

    async def stream(self, message: IncomingMessage) -> _CheckedText:
        return _CheckedText(self.word)


class _CheckedText:
    def __init__(self, word: str) -> None:
        self.word = word

    async def visible(self, text: str) -> int:
        if self.word in text:
            raise ContentBlocked("I can't show that answer.")
        return text.rfind("\n\n") + 2 if "\n\n" in text else 0

    async def finish(self, text: str) -> None:
        if self.word in text:
            raise ContentBlocked("I can't show that answer.")


class Refuse:
    """A TurnGuard that refuses every message with ``error``."""

    def __init__(self, error: BotError) -> None:
        self.error = error
        self.seen = 0

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        self.seen += 1
        raise self.error
