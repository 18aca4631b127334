"""Extension points of a turn (DESIGN.md §3): guards (step 4), budget reservation (step 6), tools (step 7).

The spine ships neutral defaults; moderation, rate limits, bans, budgets and tools plug in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.domain.errors import BotError
from core.domain.types import Attachment, IncomingMessage
from core.llm.types import ToolCall, Usage


class TurnGuard(Protocol):
    """Runs first; returns the message to use (e.g. redacted) or raises BotError to refuse the turn."""

    async def check(self, message: IncomingMessage) -> IncomingMessage: ...


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What the budget reservation of a turn is sized from: exact prompt tokens and the worst case output."""

    message: IncomingMessage
    model: str
    prompt_tokens: int
    max_output_tokens: int
    rounds: int
    growth_per_round: int = 0  # most tokens a tool round adds to the prompt (tool calls + results)


@dataclass(frozen=True, slots=True)
class CallUsage:
    model: str
    usage: Usage
    conversation_id: int


class BudgetGate(Protocol):
    async def reserve(self, plan: CallPlan) -> object:
        """Hold the worst-case cost of ``plan`` or raise QuotaExceeded; the handle goes to settle/release."""
        ...

    async def settle(self, session: AsyncSession, handle: object, usages: Sequence[CallUsage]) -> None:
        """Replace the hold by the real usage, inside the turn's transaction (writes the ledger)."""
        ...

    async def release(self, handle: object) -> None:
        """The turn failed: give the hold back."""
        ...

    def affordable_rounds(self, plan: CallPlan) -> int:
        """How many of ``plan.rounds`` model calls fit the per-turn spend cap (at least 1)."""
        ...


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    content: str
    attachments: tuple[Attachment, ...] = ()  # files for the user, e.g. a generated image


class ToolRunner(Protocol):
    async def definitions(self, message: IncomingMessage) -> Sequence[dict[str, Any]]:
        """Tool definitions (Chat Completions ``tools`` entries) offered for this message."""
        ...

    async def run(
        self, calls: Sequence[ToolCall], message: IncomingMessage, conversation_id: int | None = None
    ) -> Sequence[ToolResult]:
        """Run the calls of one model response; failures come back as results, never as exceptions."""
        ...


class NoBudget:
    """No limits configured: nothing is held, nothing is recorded."""

    async def reserve(self, plan: CallPlan) -> object:
        return None

    async def settle(self, session: AsyncSession, handle: object, usages: Sequence[CallUsage]) -> None:
        return None

    async def release(self, handle: object) -> None:
        return None

    def affordable_rounds(self, plan: CallPlan) -> int:
        return plan.rounds


class Replier(Protocol):
    """How the core talks back to the user; each adapter implements it for its platform."""

    async def start(self) -> None:
        """A reply is being prepared (typing indicator, placeholder message, status)."""

    async def update(self, text: str) -> None:
        """The reply so far (full text, not a delta). Adapters throttle edits to their platform's limits."""

    async def status(self, text: str) -> None:
        """A short progress note while no text streams, e.g. "Using calculator…"."""

    async def finish(self, text: str) -> None:
        """The complete reply."""

    async def attach(self, attachment: Attachment) -> None:
        """Send a file (generated image, chart, CSV) with the reply."""

    async def error(self, error: BotError) -> None:
        """The turn failed; show ``error.user_message``."""
