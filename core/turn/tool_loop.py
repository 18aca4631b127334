"""The model call and the tool loop around it (DESIGN.md §3 steps 7-8): bounded rounds, each streamed to the
user through output moderation; tool calls run and their results fed back; the last round answers in words.
Before each further round the budget hold is extended to cover it; when it cannot be, that round answers in
words (``tool_choice: none``) within what is held."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.domain.errors import ContentBlocked, LLMUnavailable, QuotaExceeded
from core.domain.ports import (
    CallUsage,
    CheckedText,
    ModelClient,
    OutputModerator,
    Replier,
    ToolRunner,
    TurnMessage,
)
from core.domain.types import IncomingMessage
from core.llm.tokens import TokenCounter
from core.llm.types import Completion, ToolCall, Usage
from core.metrics import Metrics
from core.turn.context import TurnContext
from core.turn.deadline import TurnDeadline
from core.turn.fitting import fit_results, tool_wire
from core.turn.history import wire_message
from core.turn.reservation import HeldBudget
from core.turn.stopping import StopSignal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    produced: list[TurnMessage]  # assistant messages and tool results, in order
    text: str  # the final answer in words
    stopped_by: str | None = None  # the Stop button was used (by whom): ``text`` is what was streamed


class ReplyStream:
    """The text of one model response on its way to the user: shown only as far as output moderation has
    cleared it (all of it when there is none); remembers everything that was read, shown or not."""

    def __init__(self, replier: Replier, checked: CheckedText | None) -> None:
        self._replier = replier
        self._checked = checked
        self._shown = 0
        self.streamed = ""
        self.visible = ""  # what the user was shown (moderation cleared)

    async def show(self, text: str) -> None:
        """The text so far (raises ContentBlocked when moderation stops it)."""
        self.streamed = text
        if self._checked is None:
            self.visible = text
            await self._replier.update(text)
            return
        visible = await self._checked.visible(text)
        if visible > self._shown:
            self._shown = visible
            self.visible = text[:visible]
            await self._replier.update(text[:visible])

    async def finish(self, text: str) -> None:
        """The whole response: waits for the rest of the moderation checks."""
        if self._checked is not None:
            await self._checked.finish(text)


@dataclass(slots=True)
class _Rounds:
    """One turn's tool loop in progress: the messages so far and what they cost."""

    message: IncomingMessage
    conversation_id: int
    model: str
    tools: list[dict[str, Any]]
    replier: Replier
    usages: list[CallUsage]
    messages: list[dict[str, Any]]
    prompt_tokens: int
    budget: HeldBudget
    deadline: TurnDeadline | None  # when the turn ends (``when``: loop.time(); None: no limit)
    stop: StopSignal | None = None
    produced: list[TurnMessage] = field(default_factory=list)
    streamed: str = ""  # what the user saw of a stopped call

    @contextlib.asynccontextmanager
    async def waiting(self, seconds: float) -> AsyncIterator[None]:
        """TurnPause: the turn waits for a person (a tool approval), at most ``seconds``: the hold is kept
        from being swept meanwhile and the wait does not count against the turn's deadline."""
        await self.budget.keep(seconds)
        if self.deadline is None:
            yield
            return
        with self.deadline.paused(seconds):
            yield

    @property
    def stopped(self) -> bool:
        """TurnPause: the Stop button was used while the turn waits (the wait then ends)."""
        return self.stop is not None and self.stop.stopped

    async def until_stopped(self) -> None:
        """TurnPause: returns once the Stop button is used (a running tool is then cancelled)."""
        if self.stop is None:
            await asyncio.Event().wait()  # never
        else:
            await self.stop.wait()


class ToolLoop:
    def __init__(
        self,
        llm: ModelClient,
        counter: TokenCounter,
        metrics: Metrics,
        *,
        max_output_tokens: int,
        tool_round_tokens: int,
        tools: ToolRunner | None = None,
        output: OutputModerator | None = None,
    ) -> None:
        self._llm = llm
        self._counter = counter
        self._metrics = metrics
        self._max_output_tokens = max_output_tokens
        self._tool_round_tokens = tool_round_tokens
        self._tools = tools
        self._output = output

    async def run(
        self,
        message: IncomingMessage,
        conversation_id: int,
        context: TurnContext,
        replier: Replier,
        usages: list[CallUsage],
        budget: HeldBudget,
        deadline: TurnDeadline | None = None,
        stop: StopSignal | None = None,
    ) -> Answer:
        """Model rounds until one answers in words; ``usages`` receives each call's usage as soon as it is
        known, so a turn that fails later is still charged for it. ``budget`` holds the first call (and an
        answer after it when tools are offered) and is extended before each further call. When ``stop`` is
        set the stream is closed at once and the answer is what was streamed so far (charged by our exact
        count: a cut stream reports no usage)."""
        turn = _Rounds(
            message=message,
            conversation_id=conversation_id,
            model=context.model,
            tools=context.tools,
            replier=replier,
            usages=usages,
            messages=list(context.messages),
            prompt_tokens=context.prompt_tokens,
            budget=budget,
            deadline=deadline,
            stop=stop,
        )
        rounds = context.plan.rounds
        for round_number in range(1, rounds + 1):
            may_call = bool(turn.tools) and round_number < rounds  # the last round must answer in words
            if stop is not None and stop.stopped:
                return self._stopped(turn, "")
            if round_number > 1:
                may_call = await self._cover(turn, may_call)
            completion = await self._call(turn, may_call)
            if completion is None:  # stopped mid-stream
                return self._stopped(turn, turn.streamed)
            calls = completion.tool_calls if may_call else ()
            assistant = self._assistant(turn.model, completion.text, calls)
            turn.produced.append(assistant)
            if not calls:
                return Answer(turn.produced, _words(completion))
            await self._use_tools(turn, assistant, calls)
        raise AssertionError("unreachable: the last round offers no tools")

    async def _cover(self, turn: _Rounds, may_call: bool) -> bool:
        """Extend the hold over the next call (and an answer after it when it may call tools); False: the
        budget covers no further tool round, so the next call answers in words within what is held."""
        if may_call:
            try:
                await turn.budget.cover(turn.usages, turn.prompt_tokens, calls=2)
                return True
            except QuotaExceeded:
                log.info("no budget for another tool round of %s: answering now", turn.message.event_id)
        await turn.budget.cover(turn.usages, turn.prompt_tokens, calls=1)  # held already, unless miscounted
        return False

    def _stopped(self, turn: _Rounds, text: str) -> Answer:
        """The Stop button: the answer is what was streamed (a placeholder word when nothing was)."""
        assert turn.stop is not None
        assistant = self._assistant(turn.model, text or STOPPED_EMPTY, ())
        turn.produced.append(assistant)
        return Answer(turn.produced, text, stopped_by=turn.stop.by or "")

    async def _call(self, turn: _Rounds, may_call: bool) -> Completion | None:
        """One streamed model call, charged even when it is stopped mid-stream; None: the Stop button
        closed it (charged: the prompt and the text streamed, by our exact count)."""
        checked = await self._output.stream(turn.message) if self._output is not None else None
        reply = ReplyStream(turn.replier, checked)
        turn.streamed = ""
        try:
            completion = await _unless_stopped(
                self._llm.stream(
                    model=turn.model,
                    messages=turn.messages,
                    max_output_tokens=self._max_output_tokens,
                    on_text=reply.show,
                    tools=turn.tools,
                    tool_choice=None if may_call or not turn.tools else "none",
                    deadline=turn.deadline.when if turn.deadline is not None else None,
                ),
                turn.stop,
            )
        except ContentBlocked:
            # Stopped mid-stream (by output moderation or the provider's filter): the provider bills what
            # it read and wrote, so the turn is charged our exact count of it.
            written = self._counter.count_text(turn.model, reply.streamed)
            turn.usages.append(
                CallUsage(turn.model, Usage(turn.prompt_tokens, 0, written), turn.conversation_id)
            )
            raise
        if completion is None:
            written = self._counter.count_text(turn.model, reply.streamed)
            usage = Usage(turn.prompt_tokens, 0, written)
            self._metrics.llm_tokens.labels(turn.model, "prompt").inc(usage.prompt_tokens)
            self._metrics.llm_tokens.labels(turn.model, "completion").inc(usage.completion_tokens)
            turn.usages.append(CallUsage(turn.model, usage, turn.conversation_id))
            turn.streamed = reply.visible
            return None
        usage = self._usage(completion, turn.model, turn.prompt_tokens)
        turn.usages.append(CallUsage(turn.model, usage, turn.conversation_id))
        await reply.finish(completion.text)
        return completion

    async def _use_tools(self, turn: _Rounds, assistant: TurnMessage, calls: Sequence[ToolCall]) -> None:
        """Run the calls of one response and feed their (redacted, fitted) results back to the model."""
        assert self._tools is not None
        turn.messages.append(assistant.wire)
        await turn.replier.status("Using " + ", ".join(sorted({call.name for call in calls})) + "…")
        results = await self._tools.run(calls, turn.message, turn.conversation_id, pause=turn)
        for result in results:
            for attachment in result.attachments:
                await turn.replier.attach(attachment)
        fitted = fit_results(self._counter, turn.model, results, self._tool_round_tokens)
        for result, content in zip(results, fitted, strict=True):
            wire = tool_wire(result.call_id, content)
            tokens = self._counter.count_message(turn.model, wire, [])
            parts = [{"type": "text", "text": content}]
            turn.produced.append(TurnMessage("tool", parts, wire, tokens, tool_call_id=result.call_id))
            turn.messages.append(wire)
            turn.prompt_tokens += tokens
        turn.prompt_tokens += assistant.tokens

    def _usage(self, completion: Completion, model: str, prompt_tokens: int) -> Usage:
        if completion.usage is not None:
            usage = completion.usage
        else:  # an endpoint that ignores include_usage: bill our own exact counts
            usage = Usage(prompt_tokens, 0, self._counter.count_text(model, completion.text))
        self._metrics.llm_tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        self._metrics.llm_tokens.labels(model, "completion").inc(usage.completion_tokens)
        return usage

    def _assistant(self, model: str, text: str, calls: Sequence[ToolCall]) -> TurnMessage:
        tool_calls = [call.wire() for call in calls] or None
        parts = [{"type": "text", "text": text}] if text else []
        wire = wire_message("assistant", parts, tool_calls=tool_calls)
        tokens = self._counter.count_message(model, wire, [])
        return TurnMessage("assistant", parts, wire, tokens, tool_calls=tool_calls, model=model)


STOPPED_EMPTY = "(stopped before answering)"  # what history keeps of an answer stopped before any text


async def _unless_stopped(
    call: Coroutine[Any, Any, Completion], stop: StopSignal | None
) -> Completion | None:
    """``call``'s completion, or None when ``stop`` is set first: the call is cancelled then (its HTTP
    stream closed)."""
    if stop is None:
        return await call
    streaming = asyncio.ensure_future(call)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((streaming, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not streaming.done():
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
    if streaming.done() and not streaming.cancelled():
        return streaming.result()  # finished first (or failed: its error is raised)
    if stop.stopped:
        return None
    return streaming.result()  # cancelled by itself: the cancellation goes on


def _words(completion: Completion) -> str:
    if not completion.text.strip():
        raise LLMUnavailable(
            "The model returned an empty answer. Please try again or rephrase.",
            detail=f"finish_reason={completion.finish_reason}",
        )
    return completion.text
