"""Content moderation of what users send and what the model answers (OpenAI's moderation endpoint).

A decision per message: ``allow``; ``flag`` (answer, but record it); ``block`` (refuse with a neutral message
that does not echo the content); ``unavailable`` (the endpoint failed: answer or refuse by the fail mode).
Thresholds are per category (score 0..1); every decision is written to ``moderation_events``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI

from core.channel_policies import ChannelPolicies, channel_of
from core.db.models import ModerationEvent
from core.db.session import Database
from core.errors import ContentBlocked
from core.images import sniff_image
from core.modlog import ModerationNotice, ModLog
from core.periods import Clock, utc_now
from core.settings import SettingsError
from core.types import IncomingMessage

log = logging.getLogger(__name__)

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    flag: float = 0.4
    block: float = 0.8


@dataclass(frozen=True, slots=True)
class ModerationPolicy:
    default: Thresholds = Thresholds()
    per_category: Mapping[str, Thresholds] = field(default_factory=dict)
    fail_open: bool = True

    def thresholds(self, category: str) -> Thresholds:
        return self.per_category.get(category, self.default)

    def with_overrides(self, raw: Mapping[str, Any] | None) -> ModerationPolicy:
        """This policy changed by a channel's settings: ``{"flag": 0.3, "block": 0.6, "violence": {"block":
        0.5}}``; ValueError on an unknown category or a threshold outside 0..1."""
        if not raw:
            return self
        default = Thresholds(
            _threshold(raw.get("flag", self.default.flag)), _threshold(raw.get("block", self.default.block))
        )
        # The channel's own defaults apply to every category it does not name, server-tuned ones included,
        # where they are stricter: an admin tightening a channel must not be undone by the server's tuning.
        per_category = {
            category: Thresholds(
                min(tuned.flag, default.flag) if "flag" in raw else tuned.flag,
                min(tuned.block, default.block) if "block" in raw else tuned.block,
            )
            for category, tuned in self.per_category.items()
        }
        for name, values in raw.items():
            if name in ("flag", "block"):
                continue
            if name not in CATEGORIES or not isinstance(values, Mapping):
                raise ValueError(f"unknown moderation category {name!r}; known: {', '.join(CATEGORIES)}")
            base = per_category.get(name, default)
            per_category[name] = Thresholds(
                _threshold(values.get("flag", base.flag)), _threshold(values.get("block", base.block))
            )
        return ModerationPolicy(default, per_category, self.fail_open)

    @classmethod
    def from_settings(
        cls, *, flag: float, block: float, overrides: Mapping[str, Mapping[str, float]], fail_open: bool
    ) -> ModerationPolicy:
        default = Thresholds(flag, block)
        per_category = {}
        for category, values in overrides.items():
            if category not in CATEGORIES:
                known = ", ".join(CATEGORIES)
                raise SettingsError(
                    f"THREADWISE_MODERATION_THRESHOLDS: unknown category {category!r}; known: {known}"
                )
            per_category[category] = Thresholds(values.get("flag", flag), values.get("block", block))
        return cls(default, per_category, fail_open)


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # allow | flag | block | unavailable
    categories: tuple[str, ...] = ()  # categories at or over their flag threshold
    scores: Mapping[str, float] = field(default_factory=dict)


class Moderator:
    """Calls the moderation endpoint and applies the policy."""

    def __init__(
        self,
        client: AsyncOpenAI,
        policy: ModerationPolicy,
        *,
        model: str = "omni-moderation-latest",
        timeout: float = 10.0,
    ) -> None:
        self._client = client.with_options(max_retries=1)  # a turn waits for this: fail fast
        self.policy = policy
        self._model = model
        self._timeout = timeout

    async def check(
        self, text: str, images: Sequence[bytes] = (), policy: ModerationPolicy | None = None
    ) -> Decision:
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        for data in images:
            info = sniff_image(data)
            if info is not None:
                url = f"data:{info.mime};base64,{base64.b64encode(data).decode('ascii')}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
        if not parts:
            return Decision("allow")
        try:
            response = await self._client.moderations.create(
                model=self._model,
                input=parts,  # type: ignore[arg-type]
                timeout=self._timeout,
            )
        except openai.OpenAIError as exc:
            log.warning("moderation unavailable: %s: %s", type(exc).__name__, exc)
            return Decision("unavailable")
        scores: dict[str, float] = {}
        for result in response.results:
            raw = result.category_scores.model_dump(by_alias=True, exclude_none=True)
            for category in CATEGORIES:
                value = raw.get(category)
                if isinstance(value, int | float):
                    scores[category] = max(scores.get(category, 0.0), float(value))
        return self.decide(scores, policy)

    def decide(self, scores: Mapping[str, float], policy: ModerationPolicy | None = None) -> Decision:
        return decide(scores, policy or self.policy)


class ModerationAudit:
    """Writes decisions to ``moderation_events`` (scores and categories; raw content only if allowed)."""

    def __init__(
        self,
        database: Database,
        *,
        keep_content: bool = False,
        clock: Clock = utc_now,
        modlog: ModLog | None = None,
    ) -> None:
        self._db = database
        self._keep_content = keep_content
        self._clock = clock
        self._modlog = modlog

    async def record(
        self,
        message: IncomingMessage,
        direction: str,
        decision: Decision,
        *,
        content: str = "",
        redactions: Sequence[str] = (),
    ) -> None:
        async with self._db.unit_of_work() as session:
            session.add(
                ModerationEvent(
                    platform=message.key.platform,
                    workspace_id=message.key.workspace_id,
                    channel_id=message.key.channel_id,
                    user_id=message.user.user_id,
                    direction=direction,
                    action=decision.action,
                    categories=list(decision.categories),
                    scores={c: round(s, 6) for c, s in decision.scores.items() if s >= 0.01},
                    redactions=list(redactions),
                    content=content if self._keep_content and decision.action in ("flag", "block") else None,
                    created_at=self._clock(),
                )
            )
        if self._modlog is not None and decision.action in ("flag", "block"):
            key = message.key
            self._modlog.notify(
                ModerationNotice(
                    key.platform,
                    key.workspace_id,
                    key.channel_id,
                    message.user.user_id,
                    direction,
                    decision.action,
                    tuple(decision.categories),
                    dict(decision.scores),
                )
            )


def refusal(decision: Decision, direction: str) -> ContentBlocked:
    if decision.action == "unavailable":
        return ContentBlocked(
            "Content checks are unavailable right now, so I can't answer. Please try again in a few minutes.",
            detail=f"{direction} moderation unavailable (fail-closed)",
        )
    topics = ", ".join(decision.categories) or "content policy"
    if direction == "input":
        text = f"I can't help with that: the message was flagged by the content policy ({topics})."
    else:
        text = (
            f"I wrote an answer but the content policy stopped it ({topics}). Please rephrase your request."
        )
    return ContentBlocked(text, detail=f"{direction} blocked: {topics}")


class ModerationGuard:
    """A TurnGuard: moderates the user's text and images before anything is sent to the model or stored."""

    def __init__(
        self, moderator: Moderator, audit: ModerationAudit, policies: ChannelPolicies | None = None
    ) -> None:
        self._moderator = moderator
        self._audit = audit
        self._policies = policies

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        policy = await policy_for(self._moderator, self._policies, message)
        text = message.all_text()  # attached text files are checked with the message
        decision = await self._moderator.check(text, [a.data for a in message.attachments], policy)
        await self._audit.record(message, "input", decision, content=text)
        if decision.action == "block" or (decision.action == "unavailable" and not policy.fail_open):
            raise refusal(decision, "input")
        return message


class OutputModeration:
    """Moderates the answer while it streams: text is shown only once the paragraph holding it has passed.

    Completed segments (ending at a blank line, or every ``segment_chars``) are checked concurrently while the
    model keeps writing; the reply the user sees never runs ahead of what was checked.
    """

    def __init__(
        self,
        moderator: Moderator,
        audit: ModerationAudit,
        *,
        segment_chars: int = 800,
        policies: ChannelPolicies | None = None,
    ) -> None:
        self._moderator = moderator
        self._audit = audit
        self._segment_chars = segment_chars
        self._policies = policies

    async def stream(self, message: IncomingMessage) -> ModeratedStream:
        policy = await policy_for(self._moderator, self._policies, message)
        return ModeratedStream(self._moderator, self._audit, message, self._segment_chars, policy)


class ModeratedStream:
    def __init__(
        self,
        moderator: Moderator,
        audit: ModerationAudit,
        message: IncomingMessage,
        segment_chars: int,
        policy: ModerationPolicy,
    ) -> None:
        self._policy = policy
        self._moderator = moderator
        self._audit = audit
        self._message = message
        self._segment_chars = segment_chars
        self._submitted = 0
        self._checks: list[tuple[int, asyncio.Task[Decision]]] = []
        self._cleared = 0

    def _boundary(self, text: str) -> int | None:
        pending = text[self._submitted :]
        cut = pending.rfind("\n\n")
        if cut > 0:
            return self._submitted + cut + 2
        if len(pending) >= self._segment_chars:
            space = pending.rfind(" ", 0, self._segment_chars)
            return self._submitted + (space + 1 if space > 0 else self._segment_chars)
        return None

    def _submit(self, text: str, end: int) -> None:
        segment = text[self._submitted : end]
        self._checks.append((end, asyncio.create_task(self._moderator.check(segment, (), self._policy))))
        self._submitted = end

    async def visible(self, text: str) -> int:
        """Feed the text so far; returns how much of it may be shown now."""
        while (end := self._boundary(text)) is not None:
            self._submit(text, end)
        while self._checks and self._checks[0][1].done():
            end, task = self._checks.pop(0)
            await self._settle(task.result(), text)
            self._cleared = end
        return self._cleared

    async def finish(self, text: str) -> None:
        """The whole answer: check the rest, wait for every check; raises ContentBlocked on a block."""
        if self._submitted < len(text):
            self._submit(text, len(text))
        worst = Decision("allow")
        try:
            for _end, task in self._checks:
                decision = await task
                await self._settle(decision, text)
                if decision.action != "allow" and worst.action == "allow":
                    worst = decision
        finally:
            for _end, task in self._checks:
                task.cancel()
        await self._audit.record(self._message, "output", worst, content=text)

    async def _settle(self, decision: Decision, text: str) -> None:
        if decision.action == "block" or (decision.action == "unavailable" and not self._policy.fail_open):
            for _end, task in self._checks:
                task.cancel()
            await self._audit.record(self._message, "output", decision, content=text)
            raise refusal(decision, "output")


def decide(scores: Mapping[str, float], policy: ModerationPolicy) -> Decision:
    """allow, flag (a category at or over its flag threshold) or block (one at or over its block one)."""
    flagged = tuple(c for c in CATEGORIES if scores.get(c, 0.0) >= policy.thresholds(c).flag)
    blocked = any(scores.get(c, 0.0) >= policy.thresholds(c).block for c in CATEGORIES)
    action = "block" if blocked else "flag" if flagged else "allow"
    return Decision(action, flagged, dict(scores))


async def policy_for(
    moderator: Moderator, policies: ChannelPolicies | None, message: IncomingMessage
) -> ModerationPolicy:
    """The moderator's policy with the channel's overrides set by admins (a bad stored one is ignored)."""
    if policies is None:
        return moderator.policy
    overrides = (await policies.get(channel_of(message.key))).moderation
    try:
        return moderator.policy.with_overrides(overrides)
    except ValueError:
        log.warning("ignoring invalid moderation settings of %s", message.key)
        return moderator.policy


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"a threshold is a number from 0 to 1, not {value!r}")
    return float(value)
