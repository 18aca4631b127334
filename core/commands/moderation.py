"""`/ai-admin moderation …`: the moderation log, and a channel's own moderation thresholds."""

from __future__ import annotations

import json
from typing import Any

from core.admin.service import AdminService
from core.commands.describe import describe_moderation
from core.commands.parsing import channel_of, parse_moderation_filter, parse_thresholds
from core.commands.results import Emphasis, Paragraph, Reply, line, say
from core.commands.tenancy import AdminCall, within
from core.domain.errors import BadInput
from core.guards.channel_policy import Channel, ChannelPolicies
from core.guards.moderation import ModerationPolicy

POLICY_USAGE = (
    "Usage: `moderation policy <#channel|here> [show|clear|flag 0.3 block 0.6|violence block 0.5]`."
)


class ModerationCommands:
    def __init__(
        self, admin: AdminService, policies: ChannelPolicies | None, moderation: ModerationPolicy | None
    ) -> None:
        self._admin = admin
        self._policies = policies
        self._moderation = moderation

    async def run(self, call: AdminCall, words: list[str]) -> Reply:
        if words and words[0].lower() == "policy":
            return await self._policy(call, words[1:])
        found = parse_moderation_filter(words, call.key)
        events = await self._admin.moderation(
            call.user, limit=found.limit, user=found.user, action=found.action, workspace=call.tenant
        )
        if not events:
            return say("No moderation events match.")
        heading = line(Emphasis("Moderation log"), " (newest first)")
        return Reply((heading, *(line(describe_moderation(event)) for event in events)))

    async def _policy(self, call: AdminCall, words: list[str]) -> Reply:
        """`moderation policy <#channel|here> [show | clear | flag 0.3 block 0.6 | violence block 0.5 …]`"""
        if self._policies is None or self._moderation is None:
            raise BadInput("Moderation is switched off on this server.")
        if not words:
            raise BadInput(POLICY_USAGE)
        channel = channel_of(words[0], call.key)
        name = ":".join(channel)
        await within(self._admin, call, name, "moderation.policy")
        rest = [word.lower() for word in words[1:]] or ["show"]
        current = (await self._policies.get(channel)).moderation
        if rest == ["show"]:
            await self._admin.record(call.user, "moderation.policy.show", name, {})
            return Reply(self._describe(name, current))
        if rest == ["clear"]:
            await self._admin.record(call.user, "moderation.policy.clear", name, {})
            await self._policies.set_moderation(channel, None, by=_who(call))
            return say(f"{name} uses the server's moderation thresholds again.")
        return await self._set(call, channel, parse_thresholds(rest, dict(current or {})))

    def _describe(self, name: str, current: dict[str, Any] | None) -> tuple[Paragraph, ...]:
        assert self._moderation is not None
        effective = self._moderation.with_overrides(current)
        shown = [line(f"{name}: flag at {effective.default.flag:g}, block at {effective.default.block:g}")]
        shown += [
            line(f"  {category}: flag {levels.flag:g}, block {levels.block:g}")
            for category, levels in sorted(effective.per_category.items())
        ]
        shown.append(line("(channel settings)" if current else "(server defaults)"))
        return tuple(shown)

    async def _set(self, call: AdminCall, channel: Channel, changes: dict[str, Any]) -> Reply:
        assert self._policies is not None and self._moderation is not None
        try:
            self._moderation.with_overrides(changes)
        except ValueError as exc:
            raise BadInput(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
        name = ":".join(channel)
        await self._admin.record(call.user, "moderation.policy.set", name, {"policy": changes})
        await self._policies.set_moderation(channel, changes, by=_who(call))
        return say(f"Moderation thresholds of {name} set: {json.dumps(changes, sort_keys=True)}.")


def _who(call: AdminCall) -> str:
    return f"{call.user.platform}:{call.user.user_id}"
