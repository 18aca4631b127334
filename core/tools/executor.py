"""Runs the tool calls of one model response: concurrently, each with its timeout, every failure turned into a
structured result for the model, every call recorded (arguments redacted). What a tool returns is redacted
like user text before the model or the history sees it (DESIGN.md §10), and what was taken out is audited."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import update

from core.db.models import ToolApproval, ToolCallRecord
from core.db.session import Database
from core.domain.ports import PersonaLookup, ToolResult, TurnPause
from core.domain.types import Attachment, ChatUser, IncomingMessage
from core.guards.audit import Decision, ModerationAudit
from core.guards.channel_policy import ChannelPolicies, channel_of
from core.guards.redaction import redact_off_loop
from core.guards.redactor import Redactor
from core.llm.types import ToolCall
from core.metrics import Metrics
from core.tools.approvals import DENIED, Approvals, denial
from core.tools.registry import Tool, ToolContext, ToolError, ToolOutput, ToolRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RECORDED_ARGUMENTS = 2000


@dataclass(frozen=True, slots=True)
class _Outcome:
    call: ToolCall
    kind: str  # ok | error | timeout | invalid | unknown | refused | denied | unapproved | stopped
    text: str
    attachments: tuple[Attachment, ...]
    seconds: float
    approval_id: int | None = None  # the approval asked for before it ran (or did not)

    def result(self) -> ToolResult:
        content = self.text if self.kind == "ok" else json.dumps({"error": self.text, "kind": self.kind})
        return ToolResult(self.call.id, content, self.attachments)


class ToolExecutor:
    """The ToolRunner of the core (DESIGN.md §3 step 7)."""

    def __init__(
        self,
        registry: ToolRegistry,
        database: Database,
        policies: ChannelPolicies,
        *,
        is_admin: Callable[[ChatUser], bool],
        redactor: Redactor | None = None,
        audit: ModerationAudit | None = None,
        max_calls_per_round: int = 8,
        metrics: Metrics | None = None,
        personas: PersonaLookup | None = None,
        approvals: Approvals | None = None,
    ) -> None:
        self._metrics = metrics
        self._approvals = approvals
        self._personas = personas
        self.registry = registry
        self._db = database
        self._policies = policies
        self._is_admin = is_admin
        self._redactor = redactor
        self._audit = audit
        self._max_calls = max_calls_per_round
        # A tool's schema is derived once (pydantic work), not on every turn; a tool replaced in the registry
        # under the same name gets its own.
        self._definitions: dict[str, tuple[Tool, dict[str, Any]]] = {}

    async def available(self, message: IncomingMessage) -> list[Tool]:
        """Tools the model may call for this message: enabled in the channel, admin-only ones for admins, and
        of those only the ones its persona lists (if its persona lists tools)."""
        enabled = (await self._policies.get(channel_of(message.key))).tools
        persona = await self._personas.persona(message.key) if self._personas is not None else None
        narrowed = persona.tools if persona is not None else None
        admin = self._is_admin(message.user)
        return [
            tool
            for name, tool in sorted(self.registry.tools.items())
            if (name in enabled if enabled is not None else tool.enabled_by_default)
            and (narrowed is None or name in narrowed)
            and (admin or not tool.admin_only)
        ]

    async def definitions(self, message: IncomingMessage) -> Sequence[dict[str, Any]]:
        return [self._definition(tool) for tool in await self.available(message)]

    def _definition(self, tool: Tool) -> dict[str, Any]:
        cached = self._definitions.get(tool.name)
        if cached is None or cached[0] is not tool:
            cached = self._definitions[tool.name] = (tool, tool.definition())
        return cached[1]

    async def run(
        self,
        calls: Sequence[ToolCall],
        message: IncomingMessage,
        conversation_id: int | None = None,
        *,
        pause: TurnPause | None = None,
    ) -> Sequence[ToolResult]:
        offered = {tool.name: tool for tool in await self.available(message)}
        context = ToolContext(message, self._is_admin(message.user), conversation_id)
        outcomes = await asyncio.gather(
            *(self._one(call, index, offered, context, pause) for index, call in enumerate(calls))
        )
        if self._metrics is not None:
            for outcome in outcomes:
                self._metrics.tool_calls.labels(outcome.call.name[:64], outcome.kind).inc()
                self._metrics.tool_seconds.labels(outcome.call.name[:64]).observe(outcome.seconds)
        outcomes, redactions = await self._redact_results(outcomes)
        await self._record(message, conversation_id, outcomes)
        if redactions:
            await self._audit_redactions(message, redactions)
        return [outcome.result() for outcome in outcomes]

    async def _redact_results(self, outcomes: Sequence[_Outcome]) -> tuple[list[_Outcome], dict[str, int]]:
        """The outcomes with their texts redacted like user text (a large result in a worker thread), and
        how many of each kind were found."""
        counts: dict[str, int] = {}
        if self._redactor is None:
            return list(outcomes), counts
        redacted: list[_Outcome] = []
        for outcome in outcomes:
            result = await redact_off_loop(self._redactor, outcome.text)
            for found in result.redactions:
                counts[found.kind] = counts.get(found.kind, 0) + found.count
            redacted.append(dataclasses.replace(outcome, text=result.text) if result.changed else outcome)
        return redacted, counts

    async def _audit_redactions(self, message: IncomingMessage, counts: dict[str, int]) -> None:
        kinds = [f"{kind}x{count}" if count > 1 else kind for kind, count in counts.items()]
        log.info("redacted %s in tool results of %s", ", ".join(kinds), message.event_id)
        if self._audit is None:
            return
        try:
            await self._audit.record(message, "tool", Decision("redact"), redactions=kinds)
        except Exception:  # the audit must not cost the user the answer
            log.exception("could not audit the tool result redactions of %s", message.event_id)

    async def _one(
        self,
        call: ToolCall,
        index: int,
        offered: dict[str, Tool],
        context: ToolContext,
        pause: TurnPause | None,
    ) -> _Outcome:
        started = time.perf_counter()
        approval_id: int | None = None

        def done(kind: str, text: str, attachments: tuple[Attachment, ...] = ()) -> _Outcome:
            return _Outcome(call, kind, text, attachments, time.perf_counter() - started, approval_id)

        if index >= self._max_calls:
            return done("refused", f"Too many tool calls in one response (at most {self._max_calls}).")
        tool = offered.get(call.name)
        if tool is None:
            known = self.registry.get(call.name)
            if known is None:
                names = ", ".join(offered) or "none"
                return done("unknown", f"There is no tool named {call.name!r}. Available tools: {names}.")
            if known.admin_only and not context.is_admin:
                return done("refused", f"The tool {call.name!r} is only available to admins.")
            return done("refused", f"The tool {call.name!r} is not enabled in this channel.")
        try:
            arguments = _parse(tool, call.arguments)
        except ToolError as exc:
            return done("invalid", str(exc))
        approvals = self._approvals
        if approvals is not None and await approvals.gated(tool.name, context.message):
            shown = await self._redact(call.arguments)
            approval_id, decision = await approvals.ask(
                call, shown, context.message, context.conversation_id, pause
            )
            if not decision.approved:
                kind = "denied" if decision.status == DENIED else "unapproved"
                return done(kind, denial(tool.name, decision, approvals.timeout))
        try:
            async with asyncio.timeout(tool.timeout):
                output = await _unless_stopped(tool.run(arguments, context), pause)
            if output is None:
                return done(
                    "stopped", f"The answer was stopped while the tool {tool.name!r} ran; it was cut off."
                )
        except TimeoutError:
            return done("timeout", f"The tool {tool.name!r} did not finish within {tool.timeout:g} seconds.")
        except ToolError as exc:
            return done("error", str(exc) or f"The tool {tool.name!r} failed.")
        except Exception:
            log.exception("tool %s failed", tool.name)
            return done("error", f"The tool {tool.name!r} failed unexpectedly.")
        if isinstance(output, str):
            output = ToolOutput(output)
        return done("ok", output.text, output.attachments)

    async def _record(
        self, message: IncomingMessage, conversation_id: int | None, outcomes: Sequence[_Outcome]
    ) -> None:
        if not outcomes:
            return
        rows = [
            ToolCallRecord(
                platform=message.key.platform,
                workspace_id=message.key.workspace_id,
                channel_id=message.key.channel_id,
                conversation_id=conversation_id,
                user_id=message.user.user_id,
                tool=outcome.call.name[:64],
                arguments=await self._redact(outcome.call.arguments),
                outcome=outcome.kind,
                # the outcomes' texts are redacted already (_redact_results)
                error=None if outcome.kind == "ok" else outcome.text[:MAX_RECORDED_ARGUMENTS],
                duration_ms=round(outcome.seconds * 1000),
            )
            for outcome in outcomes
        ]
        try:
            async with self._db.unit_of_work() as session:
                session.add_all(rows)
                asked = [(o.approval_id, row) for o, row in zip(outcomes, rows, strict=True) if o.approval_id]
                if asked:  # the decision is recorded with the call: its approval names its row
                    await session.flush()
                    for approval_id, row in asked:
                        await session.execute(
                            update(ToolApproval)
                            .where(ToolApproval.id == approval_id)
                            .values(tool_call_id=row.id)
                        )
        except Exception:  # the audit must not cost the user the answer
            log.exception("could not record %d tool calls of %s", len(rows), message.event_id)

    async def _redact(self, text: str) -> str:
        if self._redactor is not None:
            text = (await redact_off_loop(self._redactor, text)).text
        return text[:MAX_RECORDED_ARGUMENTS]


def _parse(tool: Tool, raw: str) -> Any:
    """The call's arguments as the tool takes them; ToolError with what the model should fix."""
    try:
        data = json.loads(raw or "{}")
    except ValueError as exc:
        raise ToolError(f"The arguments are not valid JSON ({exc}). Send a JSON object.") from None
    if not isinstance(data, dict):
        raise ToolError("The arguments must be a JSON object.")
    if tool.arguments is None:
        return data
    try:
        return tool.arguments.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ToolError(f"Invalid arguments: {problems}.") from None


async def _unless_stopped(run: Awaitable[T], pause: TurnPause | None) -> T | None:
    """``run``'s result, or None when the turn is stopped first (the Stop button): ``run`` is cancelled."""
    if pause is None:
        return await run
    running = asyncio.ensure_future(run)
    stopping = asyncio.ensure_future(pause.until_stopped())
    try:
        await asyncio.wait((running, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    if running.cancelled():
        if pause.stopped:
            return None
        raise asyncio.CancelledError  # cancelled from outside: the cancellation goes on
    return running.result()
