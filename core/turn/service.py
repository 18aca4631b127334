"""ConversationService: one turn of a conversation, in the order of DESIGN.md §3."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.db.models import Attachment as AttachmentRow
from core.db.models import Message
from core.db.repositories import ConversationRepository, EventRepository, MessageRepository
from core.db.session import Database
from core.domain.errors import BadInput, BotError, ContentBlocked, LLMUnavailable, QuotaExceeded
from core.domain.ports import (
    BudgetGate,
    CallPlan,
    CallUsage,
    NoBudget,
    Replier,
    ToolResult,
    ToolRunner,
)
from core.domain.types import ConversationKey, IncomingMessage
from core.guards.chain import GuardChain
from core.guards.output_moderation import ModeratedStream, OutputModeration
from core.llm.client import LLMClient
from core.llm.images import sniff_image
from core.llm.tokens import REPLY_PRIMING, TokenCounter, context_window
from core.llm.types import Completion, ToolCall, Usage
from core.metrics import Metrics
from core.turn.history import HistoryEntry, HistoryStore, wire_message
from core.turn.ordering import KeyedLocks

log = logging.getLogger(__name__)

MAX_INLINE_TEXT_CHARS = 100_000


class TurnOutcome(StrEnum):
    ANSWERED = "answered"
    DUPLICATE = "duplicate"
    FAILED = "failed"


TRUNCATED = "\n[cut: the tool returned more than fits in the conversation]"
_FRAMING_SLACK = 64  # the assistant message's own framing around its tool calls


@dataclass(frozen=True, slots=True)
class TurnConfig:
    default_model: str
    system_prompt: str
    max_output_tokens: int
    max_tool_rounds: int = 4
    history_max_tokens: int | None = None
    context_windows: dict[str, int] | None = None
    fallback_model: str | None = None
    tool_round_tokens: int = 4000  # most tokens the results of one tool round may add to the prompt


@dataclass(slots=True)
class _Pending:
    """A message produced during the turn, stored when the turn ends."""

    role: str
    parts: list[dict[str, Any]]
    wire: dict[str, Any]
    tokens: int
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class _Context:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    prompt_tokens: int
    last_id: int | None
    plan: CallPlan


@dataclass(frozen=True, slots=True)
class _Image:
    name: str
    mime: str
    data: bytes
    width: int
    height: int


class ConversationService:
    """Runs turns: idempotent, ordered per conversation, concurrent across conversations."""

    def __init__(
        self,
        *,
        database: Database,
        llm: LLMClient,
        counter: TokenCounter,
        config: TurnConfig,
        history: HistoryStore | None = None,
        guards: GuardChain | None = None,
        budget: BudgetGate | None = None,
        tools: ToolRunner | None = None,
        metrics: Metrics | None = None,
        footer: Callable[[Sequence[CallUsage]], str] | None = None,
        output_moderation: OutputModeration | None = None,
    ) -> None:
        self._db = database
        self._llm = llm
        self._counter = counter
        self._config = config
        self._history = history or HistoryStore(database, counter)
        self._guards = guards or GuardChain()
        self._budget: BudgetGate = budget or NoBudget()
        self._tools = tools
        self._footer = footer
        self._output = output_moderation
        self.metrics = metrics or Metrics()
        self._locks = KeyedLocks()
        self._conversations: OrderedDict[ConversationKey, tuple[int, str | None]] = OrderedDict()

    async def handle(
        self, message: IncomingMessage, replier: Replier, *, model: str | None = None
    ) -> TurnOutcome:
        """Answer ``message`` through ``replier``; a redelivered ``event_id`` is answered only once."""
        started = time.perf_counter()
        async with self._locks.hold(message.key):
            try:
                async with self._db.unit_of_work() as session:
                    claimed = await EventRepository(session).claim(message.event_id, message.key.platform)
            except Exception:
                log.exception("could not record event %s; the turn is not run", message.event_id)
                await self._show_error(replier, BotError(), message.event_id)
                claimed = None
            if claimed is None:
                outcome = TurnOutcome.FAILED
            elif not claimed:
                log.info("duplicate event %s for %s ignored", message.event_id, message.key)
                outcome = TurnOutcome.DUPLICATE
            else:
                outcome = await self._turn(message, replier, model)
        self.metrics.turns.labels(message.key.platform, outcome.value).inc()
        self.metrics.turn_seconds.labels(message.key.platform).observe(time.perf_counter() - started)
        return outcome

    async def screen(self, message: IncomingMessage) -> IncomingMessage:
        """Run the turn guards (ban, rate limit, limits, redaction, moderation): first step of every turn, and
        all there is for a message that is not a chat turn, e.g. the prompt of ``/ai image``; raises the
        guard's BotError."""
        return await self._guards.check(message)

    async def exists(self, key: ConversationKey) -> bool:
        """Whether ``key`` already holds a conversation (a thread the assistant has taken part in)."""
        if key in self._conversations:
            return True
        async with self._db.reader() as session:
            return await ConversationRepository(session).find(key) is not None

    async def conversation_id(self, key: ConversationKey) -> int:
        return (await self._conversation(key))[0]

    async def model_of(self, key: ConversationKey) -> str:
        """The model the next turn of ``key`` uses."""
        async with self._db.reader() as session:
            found = await ConversationRepository(session).find(key)
        return (found.model if found is not None else None) or self._config.default_model

    async def set_model(self, key: ConversationKey, model: str | None) -> None:
        """Use ``model`` for later turns of ``key`` (None: back to the default)."""
        async with self._locks.hold(key):
            async with self._db.unit_of_work() as session:
                conversation = await ConversationRepository(session).get_or_create(key)
                conversation.model = model
                found = (conversation.id, model)
            self._conversations[key] = found

    async def reset(self, key: ConversationKey) -> int:
        """Hide the history of ``key`` from later turns (kept for audit until retention); returns how many
        messages were hidden. Waits for a turn in progress in that conversation."""
        async with self._locks.hold(key):
            async with self._db.unit_of_work() as session:
                found = await ConversationRepository(session).find(key)
                if found is None:
                    return 0
                hidden = await MessageRepository(session).hide_all(found.id)
            self._history.forget(found.id)
        return hidden

    async def _turn(
        self, message: IncomingMessage, replier: Replier, model_override: str | None
    ) -> TurnOutcome:
        conversation_id: int | None = None
        user: _Pending | None = None
        images: list[_Image] = []
        try:
            message = await self.screen(message)
            conversation_id, stored_model = await self._conversation(message.key)
            model = model_override or stored_model or self._config.default_model
            user, images = self._user_message(message, model)
            user = await self._answer(message, replier, conversation_id, model, user, images)
            return TurnOutcome.ANSWERED
        except Exception as exc:
            error = exc if isinstance(exc, BotError) else BotError(detail=f"{type(exc).__name__}: {exc}")
            if isinstance(exc, BotError):
                log.info("turn %s failed: %s (%s)", message.event_id, type(exc).__name__, error.detail)
            else:
                log.exception("turn %s failed unexpectedly", message.event_id)
            await self._record_failure(message, conversation_id, user, images, error)
            await self._show_error(replier, error, message.event_id)
            return TurnOutcome.FAILED

    @staticmethod
    async def _show_error(replier: Replier, error: BotError, event_id: str) -> None:
        try:
            await replier.error(error)
        except Exception:
            log.exception("could not show the error of turn %s", event_id)

    async def _answer(
        self,
        message: IncomingMessage,
        replier: Replier,
        conversation_id: int,
        model: str,
        user: _Pending,
        images: list[_Image],
    ) -> _Pending:
        """Context, budget, model call, reply and persistence. Returns the user message as stored."""
        fallback = self._config.fallback_model
        candidates = [model] if not fallback or fallback == model else [model, fallback]
        for index, candidate in enumerate(candidates):
            if candidate != model:
                user, _ = self._user_message(message, candidate)
            context = await self._context(message, conversation_id, candidate, user)
            try:
                handle = await self._budget.reserve(context.plan)
                break
            except QuotaExceeded:
                if index == len(candidates) - 1:
                    raise
                log.info("budget cannot cover %s for %s; trying %s", candidate, message.event_id, fallback)
        notes = [f"Answered with {candidate}: the budget does not cover {model} right now."] if index else []
        usages: list[CallUsage] = []
        try:
            await replier.start()
            produced, text = await self._complete(
                message,
                replier,
                conversation_id,
                candidate,
                context.messages,
                context.tools,
                context.plan.rounds,
                context.prompt_tokens,
                usages,
            )
            if self._footer is not None:
                notes.append(self._footer(usages))
            await replier.finish("\n\n".join([text, *(f"_{note}_" for note in notes)]))
            stored = await self._persist(
                message,
                conversation_id,
                [user, *produced],
                images,
                usages,
                handle,
                self._counter.encoding_for(candidate),
            )
        except BaseException:
            await self._charge_or_release(handle, usages)
            raise
        self._history.appended(conversation_id, context.last_id, stored)
        return user

    async def _context(
        self, message: IncomingMessage, conversation_id: int, model: str, user: _Pending
    ) -> _Context:
        """System prompt + the newest history that fits + the new message, and the budget plan of the call."""
        config = self._config
        system = {"role": "system", "content": config.system_prompt}
        system_tokens = self._counter.count_message(model, system, [])
        tools = list(await self._tools.definitions(message)) if self._tools else []
        tool_tokens = sum(self._counter.count_text(model, json.dumps(tool)) for tool in tools)
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
        history, last_id = await self._history.window(conversation_id, model, budget, ceiling=ceiling)
        messages = [system, *(entry.wire for entry in history), user.wire]
        prompt_tokens = fixed + sum(entry.tokens for entry in history)
        rounds = config.max_tool_rounds + 1 if tools else 1
        growth = config.max_output_tokens + config.tool_round_tokens + _FRAMING_SLACK if tools else 0
        plan = CallPlan(message, model, prompt_tokens, config.max_output_tokens, rounds, growth)
        plan = dataclasses.replace(plan, rounds=max(1, self._budget.affordable_rounds(plan)))
        return _Context(messages, tools, prompt_tokens, last_id, plan)

    async def _complete(
        self,
        message: IncomingMessage,
        replier: Replier,
        conversation_id: int,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        rounds: int,
        prompt_tokens: int,
        usages: list[CallUsage],
    ) -> tuple[list[_Pending], str]:
        """The model call, and the tool loop around it: bounded rounds, then a final answer without tools.

        ``usages`` receives each call's usage as it completes, so a turn that fails later is still charged.
        """
        produced: list[_Pending] = []
        for round_number in range(1, rounds + 1):
            may_call = bool(tools) and round_number < rounds  # the last round must answer in words
            checked = await self._output.stream(message) if self._output is not None else None
            shown = 0

            streamed = ""

            async def on_text(text: str, checked: ModeratedStream | None = checked) -> None:
                nonlocal shown, streamed
                streamed = text
                if checked is None:
                    await replier.update(text)
                    return
                visible = await checked.visible(text)
                if visible > shown:
                    shown = visible
                    await replier.update(text[:visible])

            try:
                completion = await self._llm.stream(
                    model=model,
                    messages=messages,
                    max_output_tokens=self._config.max_output_tokens,
                    on_text=on_text,
                    tools=tools,
                    tool_choice=None if may_call or not tools else "none",
                )
            except ContentBlocked:
                # Stopped mid-stream (by output moderation or the provider's filter): the provider bills what
                # it read and wrote, so the turn is charged our exact count of it.
                written = self._counter.count_text(model, streamed)
                usages.append(CallUsage(model, Usage(prompt_tokens, 0, written), conversation_id))
                raise
            usages.append(CallUsage(model, self._usage(completion, model, prompt_tokens), conversation_id))
            if checked is not None:
                await checked.finish(completion.text)
            calls = completion.tool_calls if may_call else ()
            assistant = self._assistant(model, completion.text, calls)
            produced.append(assistant)
            if not calls:
                if not completion.text.strip():
                    raise LLMUnavailable(
                        "The model returned an empty answer. Please try again or rephrase.",
                        detail=f"finish_reason={completion.finish_reason}",
                    )
                return produced, completion.text
            assert self._tools is not None
            messages.append(assistant.wire)
            await replier.status("Using " + ", ".join(sorted({call.name for call in calls})) + "…")
            results = await self._tools.run(calls, message, conversation_id)
            for result in results:
                for attachment in result.attachments:
                    await replier.attach(attachment)
            for result, content in zip(results, self._fit(model, results), strict=True):
                wire = _tool_wire(result.call_id, content)
                tokens = self._counter.count_message(model, wire, [])
                produced.append(
                    _Pending(
                        "tool",
                        [{"type": "text", "text": content}],
                        wire,
                        tokens,
                        tool_call_id=result.call_id,
                    )
                )
                messages.append(wire)
                prompt_tokens += tokens
            prompt_tokens += assistant.tokens
        raise AssertionError("unreachable: the last round offers no tools")

    def _fit(self, model: str, results: Sequence[ToolResult]) -> list[str]:
        """The results' texts, cut so that together they add at most ``tool_round_tokens`` to the prompt
        (what the budget reservation planned for); small results stay whole, large ones share the rest."""
        budget = self._config.tool_round_tokens
        count = self._counter.count_message
        sizes = [count(model, _tool_wire(r.call_id, r.content), []) for r in results]
        if sum(sizes) <= budget:
            return [r.content for r in results]
        fitted: dict[int, str] = {}
        remaining = budget
        order = sorted(range(len(results)), key=lambda i: sizes[i])
        for position, index in enumerate(order):
            share = remaining // (len(order) - position)
            content = results[index].content
            if sizes[index] > share:
                framing = count(model, _tool_wire(results[index].call_id, TRUNCATED), [])
                content = self._counter.truncate(model, content, max(0, share - framing)) + TRUNCATED
            fitted[index] = content
            remaining -= min(sizes[index], share)
        return [fitted[i] for i in range(len(results))]

    async def _charge_or_release(self, handle: object, usages: Sequence[CallUsage]) -> None:
        """A failed turn: calls that completed were paid for and are charged; otherwise the hold goes back."""
        if not usages:
            await self._budget.release(handle)
            return
        async with self._db.unit_of_work() as session:
            await self._budget.settle(session, handle, usages)

    def _usage(self, completion: Completion, model: str, prompt_tokens: int) -> Usage:
        if completion.usage is not None:
            usage = completion.usage
        else:  # an endpoint that ignores include_usage: bill our own exact counts
            usage = Usage(prompt_tokens, 0, self._counter.count_text(model, completion.text))
        self.metrics.llm_calls.labels(model).inc()
        self.metrics.llm_tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        self.metrics.llm_tokens.labels(model, "completion").inc(usage.completion_tokens)
        return usage

    def _assistant(self, model: str, text: str, calls: Sequence[ToolCall]) -> _Pending:
        tool_calls = [call.wire() for call in calls] or None
        parts = [{"type": "text", "text": text}] if text else []
        wire = wire_message("assistant", parts, tool_calls=tool_calls)
        tokens = self._counter.count_message(model, wire, [])
        return _Pending("assistant", parts, wire, tokens, tool_calls=tool_calls, model=model)

    def _user_message(self, message: IncomingMessage, model: str) -> tuple[_Pending, list[_Image]]:
        parts: list[dict[str, Any]] = []
        if message.text:
            parts.append({"type": "text", "text": message.text})
        images: list[_Image] = []
        for attachment in message.attachments:
            info = sniff_image(attachment.data)
            if info is not None:
                parts.append({"type": "image", "attachment": len(images), "detail": "auto"})
                images.append(_Image(attachment.name, info.mime, attachment.data, info.width, info.height))
                continue
            try:
                text = attachment.data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(
                    f"I can't read {attachment.name!r}: only images (PNG, JPEG, GIF, WebP) and text files "
                    "are supported."
                ) from None
            if len(text) > MAX_INLINE_TEXT_CHARS:
                raise BadInput(f"{attachment.name!r} is too long to read ({len(text):,} characters).")
            parts.append({"type": "text", "text": f"\n\nAttached file {attachment.name}:\n```\n{text}\n```"})
        if not parts:
            raise BadInput("Your message is empty.")
        wire = wire_message("user", parts, [(image.mime, image.data) for image in images])
        sizes = [(image.width, image.height) for image in images]
        tokens = self._counter.count_message(model, wire, sizes)
        return _Pending("user", parts, wire, tokens), images

    async def _conversation(self, key: ConversationKey) -> tuple[int, str | None]:
        cached = self._conversations.get(key)
        if cached is not None:
            self._conversations.move_to_end(key)
            return cached
        async with self._db.unit_of_work() as session:
            conversation = await ConversationRepository(session).get_or_create(key)
            found = (conversation.id, conversation.model)
        self._conversations[key] = found
        while len(self._conversations) > 4096:
            self._conversations.popitem(last=False)
        return found

    def _rows(
        self,
        message: IncomingMessage,
        conversation_id: int,
        pending: Sequence[_Pending],
        images: list[_Image],
        status: str,
        encoding: str,
    ) -> list[Message]:
        rows: list[Message] = []
        for item in pending:
            row = Message(
                conversation_id=conversation_id,
                role=item.role,
                content=item.parts,
                tool_calls=item.tool_calls,
                tool_call_id=item.tool_call_id,
                model=item.model,
                token_count=item.tokens,
                token_encoding=encoding,
                status=status,
                user_id=message.user.user_id if item.role == "user" else None,
                event_id=message.event_id if item.role == "user" else None,
                created_at=message.received_at if item.role == "user" else None,
            )
            if item.role == "user":
                row.attachments = [
                    AttachmentRow(
                        position=position,
                        name=image.name,
                        mime=image.mime,
                        size=len(image.data),
                        sha256=hashlib.sha256(image.data).hexdigest(),
                        width=image.width,
                        height=image.height,
                        data=image.data,
                    )
                    for position, image in enumerate(images)
                ]
            rows.append(row)
        return rows

    async def _persist(
        self,
        message: IncomingMessage,
        conversation_id: int,
        pending: list[_Pending],
        images: list[_Image],
        usages: list[CallUsage],
        handle: object,
        encoding: str,
    ) -> list[HistoryEntry]:
        """Messages, event status and usage of a successful turn, in one transaction."""
        rows = self._rows(message, conversation_id, pending, images, "ok", encoding)
        async with self._db.unit_of_work() as session:
            messages = MessageRepository(session)
            for row in rows:
                messages.add(row)
            await messages.flush()
            await ConversationRepository(session).touch(conversation_id)
            await EventRepository(session).finish(
                message.event_id, status="done", conversation_id=conversation_id
            )
            await self._budget.settle(session, handle, usages)
        return [
            HistoryEntry(row.id, item.role, item.wire, item.tokens)
            for row, item in zip(rows, pending, strict=True)
        ]

    async def _record_failure(
        self,
        message: IncomingMessage,
        conversation_id: int | None,
        user: _Pending | None,
        images: list[_Image],
        error: BotError,
    ) -> None:
        """Keep the failed turn as a hidden pair (user message + error marker) and mark the event failed."""
        try:
            async with self._db.unit_of_work() as session:
                if conversation_id is not None and user is not None:
                    marker = _Pending("assistant", [{"type": "text", "text": error.user_message}], {}, 0)
                    for row in self._rows(message, conversation_id, [user, marker], images, "failed", "n/a"):
                        session.add(row)
                await EventRepository(session).finish(
                    message.event_id, status="failed", conversation_id=conversation_id
                )
        except Exception:
            log.exception("could not record the failure of turn %s", message.event_id)


def _tool_wire(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}
