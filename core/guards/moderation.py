"""Content moderation of what users send and what the model answers (OpenAI's moderation endpoint).

A decision per message: ``allow``; ``flag`` (answer, but record it); ``block`` (refuse with a neutral message
that does not echo the content); ``unavailable`` (the endpoint failed: answer or refuse by the fail mode).
Thresholds are per category (score 0..1); every decision is written to ``moderation_events``.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.domain.errors import ContentBlocked
from core.domain.types import IncomingMessage
from core.guards.audit import Decision, ModerationAudit
from core.guards.channel_policy import ChannelPolicies, channel_of
from core.llm.images import sniff_image
from core.settings import SettingsError

if TYPE_CHECKING:
    from openai import AsyncOpenAI

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
        import openai  # loaded already by the client; not when only the policy is used (admin commands)

        try:
            # The SDK's lower-level request with a ready body, the answer as its JSON: ``moderations.create``
            # type-transforms the input and builds pydantic models of every result (DESIGN.md §8), a
            # sixth of a moderated turn's CPU for the same scores.
            response = await self._client.post(
                "/moderations",
                body={"model": self._model, "input": parts},
                cast_to=object,
                options={"timeout": self._timeout},
            )
        except openai.OpenAIError as exc:
            log.warning("moderation unavailable: %s: %s", type(exc).__name__, exc)
            return Decision("unavailable")
        results = response.get("results") if isinstance(response, dict) else None
        if not isinstance(results, list):
            log.warning("moderation unavailable: an answer without results")
            return Decision("unavailable")
        scores: dict[str, float] = {}
        for result in results:
            raw = result.get("category_scores") if isinstance(result, dict) else None
            if not isinstance(raw, dict):
                continue
            for category in CATEGORIES:
                value = raw.get(category)
                if isinstance(value, int | float):
                    scores[category] = max(scores.get(category, 0.0), float(value))
        return self.decide(scores, policy)

    def decide(self, scores: Mapping[str, float], policy: ModerationPolicy | None = None) -> Decision:
        return decide(scores, policy or self.policy)


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
