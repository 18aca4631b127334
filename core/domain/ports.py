"""The ports of a turn (DESIGN.md §3): what the turn pipeline needs from the world, as Protocols and values.

Guards (step 4), conversation lookup and history (step 5), budget reservation (step 6), the model call and
tools (step 7), output moderation and persistence (step 8). Nothing here names a database, an SDK or a
platform: the SQL store, the OpenAI client and the budgets implement these; the unit tests, in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.domain.errors import BotError
from core.domain.types import Attachment, ChatUser, ConversationKey, IncomingMessage
from core.llm.types import Completion, ToolCall, Usage

OnText = Callable[[str], Awaitable[None]]


class TurnGuard(Protocol):
    """Runs first; returns the message to use (e.g. redacted) or raises BotError to refuse the turn."""

    async def check(self, message: IncomingMessage) -> IncomingMessage: ...


# ---- values a turn passes through its ports ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """A conversation as a turn needs it: its id and the model chosen for it (None: the default)."""

    id: int
    model: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One stored message as the model sees it, with its exact token count."""

    message_id: int
    role: str
    wire: dict[str, Any]
    tokens: int


@dataclass(frozen=True, slots=True)
class TurnMessage:
    """A message produced during the turn (the user's, the assistant's, tool results), stored when it ends."""

    role: str
    parts: list[dict[str, Any]]
    wire: dict[str, Any]
    tokens: int
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class UserImage:
    """An image the user attached, as it is stored and shown to the model."""

    name: str
    mime: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class GuardRecord:
    """A guard's decision on a turn (a ``moderation_events`` row), written in the turn's own transaction."""

    platform: str
    workspace_id: str
    channel_id: str
    user_id: str
    direction: str  # input | output | tool
    action: str  # allow | flag | block | unavailable | redact
    categories: tuple[str, ...]
    scores: Mapping[str, float]
    redactions: tuple[str, ...]
    content: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FinishedTurn:
    """What an answered turn stores: the user message, what the model and tools produced, the images."""

    message: IncomingMessage
    conversation_id: int
    messages: Sequence[TurnMessage]
    images: Sequence[UserImage]
    encoding: str  # the token encoding the counts of ``messages`` were made with
    audit: Sequence[GuardRecord] = field(default_factory=tuple)  # the guards' decisions on the turn


@dataclass(frozen=True, slots=True)
class FailedTurn:
    """A turn that ended in ``error``; ``user`` is None when it failed before the message was read."""

    message: IncomingMessage
    conversation_id: int | None
    user: TurnMessage | None
    images: Sequence[UserImage]
    error: BotError
    audit: Sequence[GuardRecord] = field(default_factory=tuple)  # the guards' decisions on the turn


@dataclass(frozen=True, slots=True)
class CallPlan:
    """Model calls to cover: the next call's exact prompt tokens, the worst case output, how many calls.

    In a turn's context, ``rounds`` is the most calls the turn may make (the per-turn cap allowing); a hold
    covers fewer: the next call and, when it may use tools, the answer after it."""

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


@dataclass(frozen=True, slots=True)
class Hold:
    """What a reservation hands back: the reservation (None when no limit applies) and whom it is for."""

    reservation_id: int | None
    micros: int
    tokens: int
    message: IncomingMessage


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    content: str
    attachments: tuple[Attachment, ...] = ()  # files for the user, e.g. a generated image


# ---- ports -------------------------------------------------------------------------------------------------


class ConversationDirectory(Protocol):
    """Step 5: which conversation a key is, created on first use."""

    async def open(self, key: ConversationKey, started_by: str | None = None) -> ConversationRef: ...


class HistoryWindow(Protocol):
    """Step 5: the newest history that fits a token budget, kept current as turns append to it."""

    async def window(
        self, conversation_id: int, model: str, budget: int, *, ceiling: int | None = None
    ) -> tuple[list[HistoryEntry], int | None]:
        """The newest whole turns fitting ``budget`` tokens, and the id of the newest visible message."""
        ...

    def appended(
        self, conversation_id: int, previous_last_id: int | None, entries: Sequence[HistoryEntry]
    ) -> None:
        """A turn stored ``entries`` after ``previous_last_id``."""
        ...


class BudgetGate(Protocol):
    """Step 6: the worst case of each model call is held before it runs: the first call's when the turn
    starts, each further call's by extending that hold. Settling the hold with the real usage is the
    TurnStore's job, inside the transaction that stores the turn."""

    async def reserve(self, plan: CallPlan) -> Hold:
        """Hold the worst-case cost of ``plan`` or raise QuotaExceeded."""
        ...

    async def extend(self, hold: Hold, usages: Sequence[CallUsage], plan: CallPlan) -> Hold:
        """Make ``hold`` cover what ``usages`` cost plus the worst case of ``plan`` (the calls still to come),
        in one transaction; the hold as it is now, or QuotaExceeded (the hold is left as it was)."""
        ...

    async def release(self, hold: Hold) -> None:
        """The turn failed before any model call completed: give the hold back."""
        ...

    def affordable_rounds(self, plan: CallPlan) -> int:
        """How many of ``plan.rounds`` model calls fit the per-turn spend cap (at least 1)."""
        ...

    async def keep(self, hold: Hold, seconds: float) -> None:
        """The turn waits up to ``seconds`` for a person (a tool approval): the hold must not be swept as
        abandoned meanwhile."""
        ...


@dataclass(frozen=True, slots=True)
class Persona:
    """What admins set for a channel or a workspace: text added to the system prompt of its turns, and
    optionally the model its conversations use (a conversation's own `/ai model` wins) and the tools it
    offers (narrowing what the channel's tool policy allows)."""

    prompt: str
    model: str | None = None
    tools: tuple[str, ...] | None = None
    scope: str = "channel"  # "channel" or "workspace": which one applied


class PersonaLookup(Protocol):
    """Step 5: the persona of a conversation's channel, else of its workspace; None when neither is set."""

    async def persona(self, key: ConversationKey) -> Persona | None: ...


class ModelClient(Protocol):
    """Step 7: one streamed chat completion; errors leave as BotError."""

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
        """``on_text`` receives the full text so far after each delta. ``deadline`` (``loop.time()``) is when
        the turn ends: no attempt or retry runs past it."""
        ...


class TurnPause(Protocol):
    """A turn waiting for a person (a tool approval): neither its deadline nor its budget hold runs out
    while it waits, at most ``seconds``. A tool running for it ends when the turn is stopped."""

    def waiting(self, seconds: float) -> AbstractAsyncContextManager[None]: ...

    @property
    def stopped(self) -> bool:
        """The turn was stopped (its Stop button) meanwhile: whatever it waits for is not waited for."""
        ...

    async def until_stopped(self) -> None:
        """Returns once the turn is stopped (never, for a turn without a Stop button)."""
        ...


class ToolRunner(Protocol):
    """Step 7: the tools a message may use, and running the calls of one model response."""

    async def definitions(self, message: IncomingMessage) -> Sequence[dict[str, Any]]:
        """Tool definitions (Chat Completions ``tools`` entries) offered for this message."""
        ...

    async def run(
        self,
        calls: Sequence[ToolCall],
        message: IncomingMessage,
        conversation_id: int | None = None,
        *,
        pause: TurnPause | None = None,
    ) -> Sequence[ToolResult]:
        """Run the calls of one model response; failures come back as results, never as exceptions.
        ``pause``: how the turn waits for a person, when a call needs the asker's approval."""
        ...


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A tool call waiting for the asker's approval, as the adapter shows it (Approve / Deny)."""

    id: int
    key: ConversationKey
    user: ChatUser  # the asker: only they (or an admin) may decide
    tool: str
    arguments: str  # redacted
    timeout: float  # seconds it is waited for


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """How an approval ended: ``approved``, ``denied``, ``timed_out``, ``cancelled`` (the turn was
    interrupted), ``stopped`` (its answer was stopped with the Stop button while it waited) or
    ``unavailable`` (it could not be shown); ``pending`` while it waits. ``by``/``by_name``: who decided
    (None unless someone did)."""

    status: str
    by: str | None = None
    by_name: str | None = None
    at: datetime | None = None

    @property
    def approved(self) -> bool:
        return self.status == "approved"


class ApprovalPrompter(Protocol):
    """A platform's side of tool approval: show the request with Approve / Deny in its conversation, and
    later show how it ended there (the click's own replica shows approvals and denials at once)."""

    async def ask(self, request: ApprovalRequest) -> ReplyLocation | None:
        """Post the request; where it is (to show the outcome there later)."""
        ...

    async def close(
        self, request: ApprovalRequest, where: ReplyLocation | None, decision: ApprovalDecision
    ) -> None:
        """Show ``decision`` in place of the buttons (e.g. "Not approved within 120 s")."""
        ...


class CheckedText(Protocol):
    """Step 8: output moderation of one model response while it streams."""

    async def visible(self, text: str) -> int:
        """Feed the text so far; returns how much of it may be shown now (raises ContentBlocked)."""
        ...

    async def finish(self, text: str) -> None:
        """The whole response: wait for every check (raises ContentBlocked)."""
        ...


class OutputModerator(Protocol):
    async def stream(self, message: IncomingMessage) -> CheckedText: ...


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """A claimed turn's place in its conversation's queue (shared by every replica on the database)."""

    position: int  # the claim's order: earlier claims of the conversation run first
    first: bool  # no earlier turn of the conversation is unfinished: this one may run now
    conversation: ConversationRef | None  # the conversation as it is now; None: not created yet
    history: tuple[int | None, int] | None = None  # the conversation's newest visible message and history
    # version as they are now (None: not read)
    ban: UserBan | None = None  # the sender's ban as it is now (when ``ban_read``)
    ban_read: bool = False  # the store read the sender's ban with the queue (the turn's ban check uses it)


@dataclass(frozen=True, slots=True)
class UserBan:
    """An admin's ban of a user (it may have expired: ``expires_at`` in the past)."""

    reason: str
    expires_at: datetime | None


ReplyLocation = dict[str, str]  # where a reply is shown, as its platform names it (e.g. channel and ts)


class TurnStore(Protocol):
    """Steps 2 and 8: the event claim and the turn's place in its conversation's queue, and what a turn
    leaves behind. Every write of a turn is conditional on its claim still being this process's: a turn
    another replica resolved (ours was presumed dead) stores nothing."""

    async def claim(self, message: IncomingMessage) -> QueuePlace | None:
        """Record the message's event id and queue it in its conversation; None when it was already
        recorded (a redelivery)."""
        ...

    async def place(self, message: IncomingMessage, position: int) -> QueuePlace:
        """The claimed turn's place now (whether the turns ahead of it have finished)."""
        ...

    async def locate(self, message: IncomingMessage, where: ReplyLocation) -> None:
        """Remember where the turn's reply is shown, so it can be resolved should this process die."""
        ...

    async def persist(
        self, turn: FinishedTurn, hold: Hold, usages: Sequence[CallUsage]
    ) -> list[HistoryEntry]:
        """Store the turn and settle ``hold`` with ``usages``, in one transaction; the stored messages."""
        ...

    async def charge(self, hold: Hold, usages: Sequence[CallUsage]) -> None:
        """A turn failed after model calls completed: settle ``hold`` with what they used."""
        ...

    async def record_failure(self, turn: FailedTurn) -> None:
        """Keep the failed turn out of the history the model sees, and mark its event failed."""
        ...


class NoBudget:
    """No limits configured: nothing is held, nothing is recorded."""

    async def reserve(self, plan: CallPlan) -> Hold:
        return Hold(None, 0, 0, plan.message)

    async def release(self, hold: Hold) -> None:
        return None

    async def extend(self, hold: Hold, usages: Sequence[CallUsage], plan: CallPlan) -> Hold:
        return hold

    def affordable_rounds(self, plan: CallPlan) -> int:
        return plan.rounds

    async def keep(self, hold: Hold, seconds: float) -> None:
        return None


class Replier(Protocol):
    """How the core talks back to the user; each adapter implements it for its platform."""

    def answering(self, answer_id: int) -> None:
        """The turn runs now; ``answer_id`` (its claim id) names its answer for the answer's buttons
        (core/answers/buttons.py). Called once, before ``start``; a replier without buttons ignores it."""

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

    def track(self, on_posted: Callable[[ReplyLocation], None]) -> None:
        """Call ``on_posted`` with where the reply is once its first message is posted (crash recovery);
        a replier with nothing to find again later (a terminal) never calls it."""


class ReplyResolver(Protocol):
    """A platform's side of crash recovery: show ``text`` where an interrupted turn's reply is (``where``,
    as recorded through ``Replier.track``), or, when nothing was posted, in the conversation of ``key``."""

    async def resolve(self, key: ConversationKey, where: ReplyLocation | None, text: str) -> None: ...
