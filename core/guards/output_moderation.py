"""Output moderation (DESIGN.md §3 step 8): the answer is checked while it streams, paragraph by paragraph."""

from __future__ import annotations

import asyncio

from core.domain.types import IncomingMessage
from core.guards.audit import Decision, ModerationAudit
from core.guards.channel_policy import ChannelPolicies
from core.guards.moderation import ModerationPolicy, Moderator, policy_for, refusal


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
