"""One turn, in the order of DESIGN.md §3; each step is one named call:

    handle          2. claim the event (a redelivery is answered once) and queue it in its conversation
    _in_turn        3. wait for the conversation's earlier turns, on whichever replica they run
    _turn           4. guards  ·  the conversation  ·  the user message, all within the turn's deadline
    _answer         5. context + 6. reserve (context.py, reservation.py), the dropped turns summarised
                    (summariser.py, when summaries are on)  7. model call and tool loop
                    (tool_loop.py; the hold extended before each further call)
    _finish         8. reply finished, then persist + settle in one transaction (store.py)
    _fail           a failed turn (a timeout too): completed calls charged, holds released, kept hidden,
                    the error shown in place of the placeholder
    _interrupted    a cancelled turn (shutdown): the same, bounded in time, then the cancellation goes on

The pipeline sees the world only through the ports of core/domain/ports.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.domain.errors import BotError, QuotaExceeded, TurnInterrupted
from core.domain.ports import (
    BudgetGate,
    CallUsage,
    ConversationDirectory,
    ConversationRef,
    FailedTurn,
    FinishedTurn,
    HistoryWindow,
    ModelClient,
    NoBudget,
    OutputModerator,
    PersonaLookup,
    QueuePlace,
    Replier,
    ToolRunner,
    TurnMessage,
    TurnStore,
    UserImage,
)
from core.domain.types import IncomingMessage
from core.guards.audit import AuditBuffer, buffering
from core.guards.bans import known_ban
from core.guards.chain import GuardChain
from core.llm.tokens import TokenCounter
from core.metrics import Metrics
from core.turn.config import TurnConfig
from core.turn.context import ContextBuilder
from core.turn.deadline import TurnDeadline
from core.turn.history import state_as_read
from core.turn.ordering import KeyedLocks, Waiters
from core.turn.reservation import HeldBudget, Reservation, Reserved
from core.turn.stopping import RunningTurns, StopSignal
from core.turn.summariser import Summariser
from core.turn.summary import SummaryStore
from core.turn.tool_loop import Answer, ToolLoop
from core.turn.user_message import build_user_message

log = logging.getLogger(__name__)

Footer = Callable[[Sequence[CallUsage]], str]
Price = Callable[[Sequence[CallUsage]], int]  # micro-dollars of the calls


def user_hash(platform: str, user_id: str) -> str:
    """A user's stable pseudonym in logs: the same person correlates across lines, the id is not written."""
    return hashlib.sha256(f"{platform}:{user_id}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


QUEUE_WAIT = 600.0  # the longest a turn waits for earlier ones (each is bounded by the turn deadline)

STOPPED_NOTE = "Stopped by {by}."  # under an answer stopped with its Stop button (shown in italics)

INTERRUPT_SECONDS = 3.0  # a cancelled turn's clean-up (message, hold, failure record) takes at most this


class TurnOutcome(StrEnum):
    ANSWERED = "answered"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TurnPorts:
    """What a turn reads and writes, and whom it calls."""

    store: TurnStore
    conversations: ConversationDirectory
    history: HistoryWindow
    llm: ModelClient
    budget: BudgetGate = field(default_factory=NoBudget)
    tools: ToolRunner | None = None
    output: OutputModerator | None = None
    summaries: SummaryStore | None = None  # where conversation summaries are kept (used when they are on)
    personas: PersonaLookup | None = None


@dataclass(slots=True)
class _Progress:
    """How far a turn got: what a failure record and the turn's log line keep, what a failure must charge
    or release, and its writes on their way."""

    conversation_id: int | None = None
    user: TurnMessage | None = None
    images: list[UserImage] = field(default_factory=list)
    writes: list[asyncio.Task[None]] = field(default_factory=list)
    model: str | None = None
    error: BotError | None = None
    budget: HeldBudget | None = None  # held and not settled yet
    usages: list[CallUsage] = field(default_factory=list)  # calls that completed
    audit: AuditBuffer = field(default_factory=AuditBuffer)  # guard decisions, written with the turn

    def remember(self, write: Coroutine[Any, Any, None]) -> None:
        """Run ``write`` (where the reply is) alongside the turn; the turn does not wait for it."""
        self.writes.append(asyncio.create_task(write))

    async def settled(self) -> None:
        for outcome in await asyncio.gather(*self.writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.warning("could not record where a reply is: %s", outcome)


class TurnPipeline:
    """Runs turns: idempotent, ordered per conversation, concurrent across conversations."""

    def __init__(
        self,
        ports: TurnPorts,
        *,
        counter: TokenCounter,
        config: TurnConfig,
        guards: GuardChain | None = None,
        locks: KeyedLocks | None = None,
        metrics: Metrics | None = None,
        footer: Footer | None = None,
        price: Price | None = None,
        running: RunningTurns | None = None,
    ) -> None:
        self._ports = ports
        self.running = running or RunningTurns()  # this process's running turns, for the Stop button
        self._price = price
        self._counter = counter
        self._config = config
        self._guards = guards or GuardChain()
        self._locks = locks or KeyedLocks()
        self._waiters = Waiters()
        self._claiming = KeyedLocks()
        self.metrics = metrics or Metrics()
        self._footer = footer
        summaries = ports.summaries if config.history_summary else None
        contexts = ContextBuilder(
            counter, config, ports.history, ports.budget, ports.tools, summaries, personas=ports.personas
        )
        self._summariser = (
            Summariser(ports.llm, counter, ports.budget, summaries, contexts, config) if summaries else None
        )
        self._reservation = Reservation(ports.budget, contexts, counter, config.fallback_model)
        self._loop = ToolLoop(
            ports.llm,
            counter,
            self.metrics,
            max_output_tokens=config.max_output_tokens,
            tool_round_tokens=config.tool_round_tokens,
            tools=ports.tools,
            output=ports.output,
        )

    async def handle(
        self, message: IncomingMessage, replier: Replier, *, model: str | None = None
    ) -> TurnOutcome:
        """Answer ``message`` through ``replier``; a redelivered ``event_id`` is answered only once."""
        started = time.perf_counter()
        progress = _Progress()
        platform = message.key.platform
        self.metrics.turns_in_flight.labels(platform).inc()
        try:
            claimed = await self._claim(message, replier)  # 2. idempotency, the turn's place in the queue
            if isinstance(claimed, TurnOutcome):
                outcome = claimed
            else:
                try:
                    outcome = await self._in_turn(message, replier, model, claimed, progress)
                finally:
                    self._waiters.finished(message.key)
        finally:
            self.metrics.turns_in_flight.labels(platform).dec()
        seconds = time.perf_counter() - started
        reason = type(progress.error).__name__ if progress.error is not None else ""
        self.metrics.turns.labels(platform, outcome.value, reason).inc()
        self.metrics.turn_seconds.labels(platform).observe(seconds)
        if self._price is not None:
            for call in progress.usages:
                self.metrics.cost.labels(call.model).inc(self._price([call]) / 1_000_000)
        if isinstance(progress.error, QuotaExceeded) and progress.error.detail:
            self.metrics.budget_refusals.labels(progress.error.detail.split(":", 1)[0]).inc()
        self._log_turn(message, outcome, progress, seconds)
        return outcome

    def _log_turn(
        self, message: IncomingMessage, outcome: TurnOutcome, progress: _Progress, seconds: float
    ) -> None:
        """One line per turn with its context and what it cost: never its text, never a raw user id."""
        key = message.key
        fields: dict[str, Any] = {
            "platform": key.platform,
            "workspace": key.workspace_id,
            "channel": key.channel_id,
            "conversation_id": progress.conversation_id,
            "event_id": message.event_id,
            "user": user_hash(key.platform, message.user.user_id),
            "model": progress.model,
            "outcome": outcome.value,
            "duration_ms": round(seconds * 1000),
            "prompt_tokens": sum(call.usage.prompt_tokens for call in progress.usages),
            "completion_tokens": sum(call.usage.completion_tokens for call in progress.usages),
        }
        if self._price is not None:
            fields["cost_usd"] = self._price(progress.usages) / 1_000_000
        if progress.error is not None:
            fields["reason"] = type(progress.error).__name__
        log.info("turn %s %s", message.event_id, outcome.value, extra={"fields": fields})

    async def _claim(self, message: IncomingMessage, replier: Replier) -> QueuePlace | TurnOutcome:
        """The claim's place; DUPLICATE for a redelivery; FAILED when the claim could not be recorded."""
        try:
            async with self._claiming.hold(
                message.key
            ):  # this process's claims of a conversation in call order
                place = await self._ports.store.claim(message)
        except Exception:
            log.exception("could not record event %s; the turn is not run", message.event_id)
            await _show_error(replier, BotError(), message.event_id)
            return TurnOutcome.FAILED
        if place is None:
            log.info("duplicate event %s for %s ignored", message.event_id, message.key)
            return TurnOutcome.DUPLICATE
        return place

    async def _in_turn(
        self,
        message: IncomingMessage,
        replier: Replier,
        model: str | None,
        place: QueuePlace,
        progress: _Progress,
    ) -> TurnOutcome:
        """3. Wait for the conversation's earlier turns (on any replica), then run this one."""
        try:
            place = await self._wait(message, place)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                exc = BotError(
                    "An earlier message in this conversation is still being answered. "
                    "Please send yours again in a minute.",
                    detail=f"still queued after {QUEUE_WAIT:.0f} s",
                )
            await self._fail(message, replier, progress, exc)
            return TurnOutcome.FAILED
        async with self._locks.hold(message.key):  # a command on this conversation waits for the turn
            with contextlib.ExitStack() as read:  # what the place read, the turn does not read again
                read.enter_context(known_ban(place.ban, read=place.ban_read))
                if place.conversation is not None and place.history is not None:
                    read.enter_context(state_as_read(place.conversation.id, *place.history))
                stop = read.enter_context(self.running.running(place.position))
                answering = getattr(replier, "answering", None)  # a replier written before buttons has none
                if answering is not None:
                    answering(place.position)  # the answer's id, for its buttons
                return await self._turn(message, replier, model, place.conversation, progress, stop)

    async def _wait(self, message: IncomingMessage, place: QueuePlace) -> QueuePlace:
        if place.first:
            return place
        current = place

        async def ready() -> bool:
            nonlocal current
            current = await self._ports.store.place(message, place.position)
            return current.first

        log.info("turn %s waits for an earlier turn of %s", message.event_id, message.key)
        async with asyncio.timeout(QUEUE_WAIT):
            await self._waiters.wait_until(message.key, ready)
        return current

    async def _turn(
        self,
        message: IncomingMessage,
        replier: Replier,
        model_override: str | None,
        known: ConversationRef | None,
        progress: _Progress,
        stop: StopSignal | None = None,
    ) -> TurnOutcome:
        replier.track(lambda where: progress.remember(self._ports.store.locate(message, where)))
        with buffering(progress.audit):  # the guards' decisions are written in the turn's transaction
            return await self._guarded_turn(message, replier, model_override, known, progress, stop)

    async def _guarded_turn(
        self,
        message: IncomingMessage,
        replier: Replier,
        model_override: str | None,
        known: ConversationRef | None,
        progress: _Progress,
        stop: StopSignal | None = None,
    ) -> TurnOutcome:
        try:
            async with TurnDeadline(self._config.turn_timeout) as deadline:  # the whole turn, till the answer
                message = await self._guards.check(message)  # 4. guards
                conversation = known or await self._ports.conversations.open(
                    message.key, message.user.user_id
                )
                progress.conversation_id = conversation.id
                model = model_override or conversation.model or await self._default_model(message)
                progress.model = model
                await self._counter.preload(model)  # a first load (maybe a download) off the loop
                user = await build_user_message(message, self._counter, model)
                progress.user, progress.images = user.message, user.images
                reserved, answer = await self._answer(message, replier, progress, model, deadline, stop)
            await self._finish(message, replier, progress, reserved, answer)  # 8.
            return TurnOutcome.ANSWERED
        except asyncio.CancelledError:
            await self._interrupted(message, replier, progress)
            raise
        except Exception as exc:
            await self._fail(message, replier, progress, exc)
            return TurnOutcome.FAILED
        finally:
            await progress.settled()

    async def _default_model(self, message: IncomingMessage) -> str:
        """The model of a conversation with none of its own: its channel's (or workspace's) persona's, else
        the router's choice for this message (routing.py), else the default."""
        personas = self._ports.personas
        persona = await personas.persona(message.key) if personas is not None else None
        if persona is not None and persona.model:
            return persona.model
        router = self._config.router
        return router.choose(message) if router is not None else self._config.default_model

    async def _answer(
        self,
        message: IncomingMessage,
        replier: Replier,
        progress: _Progress,
        model: str,
        deadline: TurnDeadline,
        stop: StopSignal | None = None,
    ) -> tuple[Reserved, Answer]:
        assert progress.conversation_id is not None and progress.user is not None
        conversation_id = progress.conversation_id
        reserved = await self._reservation.reserve(message, conversation_id, model, progress.user)  # 5. + 6.
        progress.budget = reserved.budget
        await replier.start()
        if self._summariser is not None:
            reserved = await self._summariser.refresh(
                message, conversation_id, reserved, progress.usages, deadline.when
            )
            progress.budget = reserved.budget
        answer = await self._loop.run(  # 7.
            message,
            conversation_id,
            reserved.context,
            replier,
            progress.usages,
            reserved.budget,
            deadline,
            stop,
        )
        return reserved, answer

    async def _finish(
        self,
        message: IncomingMessage,
        replier: Replier,
        progress: _Progress,
        reserved: Reserved,
        answer: Answer,
    ) -> None:
        """The reply finished, then the turn stored and its hold settled in one transaction."""
        assert progress.conversation_id is not None
        usages = progress.usages
        notes = reserved.notes
        if answer.stopped_by is not None:
            notes = [*notes, STOPPED_NOTE.format(by=answer.stopped_by or "someone")]
        await replier.finish(self._reply_text(answer.text, notes, usages))
        turn = FinishedTurn(
            message,
            progress.conversation_id,
            [reserved.user, *answer.produced],
            progress.images,
            self._counter.encoding_for(reserved.context.model),
            progress.audit.close(),
        )
        stored = await self._ports.store.persist(turn, reserved.budget.hold, usages)
        progress.budget = None  # settled
        progress.audit.records.clear()  # written
        self._ports.history.appended(progress.conversation_id, reserved.context.last_id, stored)

    def _reply_text(self, text: str, notes: list[str], usages: Sequence[CallUsage]) -> str:
        """The answer, and under it the notes (fallback model, cost footer naming the model) in italics."""
        if self._footer is not None:
            models = ", ".join(dict.fromkeys(call.model for call in usages))
            notes = [*notes, " · ".join(part for part in (models, self._footer(usages)) if part)]
        return "\n\n".join([text, *(f"_{note}_" for note in notes)])

    async def _charge_or_release(self, progress: _Progress) -> None:
        """A failed turn: calls that completed were paid for and are charged; otherwise the hold goes back."""
        held, progress.budget = progress.budget, None
        if held is None:
            return
        try:
            if progress.usages:
                await self._ports.store.charge(held.hold, progress.usages)
            else:
                await self._ports.budget.release(held.hold)
        except Exception:
            log.exception("could not settle the budget hold of a failed turn")

    async def _fail(
        self, message: IncomingMessage, replier: Replier, progress: _Progress, exc: Exception
    ) -> None:
        """Log the failure, show the user the error (in place of the placeholder; under what was streamed),
        charge or release its hold, and keep the turn hidden from later context. The error is shown first:
        a cancellation during the rest (shutdown) leaves no placeholder behind."""
        error = exc if isinstance(exc, BotError) else BotError(detail=f"{type(exc).__name__}: {exc}")
        progress.error = error
        if isinstance(exc, BotError):
            log.info("turn %s failed: %s (%s)", message.event_id, type(exc).__name__, error.detail)
        else:
            log.exception("turn %s failed unexpectedly", message.event_id)
        await _show_error(replier, error, message.event_id)
        await self._charge_or_release(progress)
        await self._record_failure(message, progress, error)

    async def _interrupted(self, message: IncomingMessage, replier: Replier, progress: _Progress) -> None:
        """The turn was cancelled (shutdown): within INTERRUPT_SECONDS, the user reads INTERRUPTED_MESSAGE in
        place of the placeholder, the hold is charged or released, the turn is kept hidden. The caller then
        re-raises the cancellation."""
        log.warning("turn %s interrupted", message.event_id)
        error = TurnInterrupted()
        try:
            async with asyncio.timeout(INTERRUPT_SECONDS):
                await _show_error(replier, error, message.event_id)
                await self._charge_or_release(progress)
                await self._record_failure(message, progress, error)
        except TimeoutError:
            log.warning("turn %s: the interruption was not fully recorded in time", message.event_id)

    async def _record_failure(self, message: IncomingMessage, progress: _Progress, error: BotError) -> None:
        failed = FailedTurn(
            message, progress.conversation_id, progress.user, progress.images, error, progress.audit.close()
        )
        try:
            await self._ports.store.record_failure(failed)
        except Exception:
            log.exception("could not record the failure of turn %s", message.event_id)


async def _show_error(replier: Replier, error: BotError, event_id: str) -> None:
    try:
        await replier.error(error)
    except Exception:
        log.exception("could not show the error of turn %s", event_id)
