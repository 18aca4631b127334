"""Admin control of tools per channel (`/ai-admin tools`, `threadwise admin tools`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.admin.service import AdminService
from core.domain.errors import BadInput
from core.domain.types import ChatUser
from core.guards.channel_policy import Channel, ChannelPolicies
from core.tools.registry import ToolRegistry


class ToolGovernance:
    def __init__(
        self,
        admin: AdminService,
        policies: ChannelPolicies,
        registry: ToolRegistry,
        *,
        also_known: Sequence[str] = (),
        open_ended: bool = False,
        approval: Sequence[str] = (),
    ) -> None:
        """``also_known``: names valid though not in ``registry`` here; ``open_ended``: accept any name with a
        note (the shell cannot see which tools MCP servers offer)."""
        self._admin = admin
        self._policies = policies
        self._registry = registry
        self._also_known = frozenset(also_known)
        self._open_ended = open_ended
        self._approval = tuple(approval)  # THREADWISE_APPROVAL_TOOLS

    async def show(self, actor: ChatUser, channel: Channel | None = None) -> str:
        await self._admin.record(actor, "tools.show", _name(channel) if channel else None, {})
        lines = ["Tools (* = on by default, admin = admins only):"]
        for name, tool in sorted(self._registry.tools.items()):
            marks = ("*" if tool.enabled_by_default else "") + (" admin" if tool.admin_only else "")
            lines.append(f"  {name}{(' ' + marks.strip()) if marks.strip() else ''}: {tool.description}")
        if self._also_known:
            lines.append(f"  also, when serving: {', '.join(sorted(self._also_known))}")
        policies = await self._policies.all()
        chosen = [
            (ch, policy) for ch, policy in policies if policy.tools is not None and channel in (None, ch)
        ]
        if chosen:
            lines.append("Channels with their own list:")
            lines.extend(f"  {_name(ch)}: {', '.join(p.tools or ()) or '(no tools)'}" for ch, p in chosen)
        elif channel is not None:
            lines.append(f"{_name(channel)} uses the default tools.")
        lines.append(f"Approval needed everywhere for: {', '.join(self._approval) or '(no tools)'}")
        gated = [(ch, policy) for ch, policy in policies if policy.approval and channel in (None, ch)]
        lines.extend(f"  and in {_name(ch)} also for: {', '.join(p.approval or ())}" for ch, p in gated)
        return "\n".join(lines)

    async def approval(self, actor: ChatUser, channel: Channel, patterns: Sequence[str]) -> str:
        """Tool-name patterns (``fetch_url``, ``github__*``) that need the asker's approval in ``channel``,
        on top of THREADWISE_APPROVAL_TOOLS; none: only those."""
        wanted = list(dict.fromkeys(pattern for pattern in patterns if pattern))
        bad = [pattern for pattern in wanted if not _PATTERN.fullmatch(pattern)]
        if bad:
            raise BadInput(
                f"Not a tool name pattern: {', '.join(bad)}. Use tool names, with * and ? as wildcards "
                "(e.g. fetch_url,github__*)."
            )
        await self._admin.record(actor, "tools.approval", _name(channel), {"patterns": wanted})
        await self._policies.set_approval(channel, wanted, by=f"{actor.platform}:{actor.user_id}")
        everywhere = ", ".join(self._approval)
        base = f" (and everywhere: {everywhere})" if everywhere else ""
        if not wanted:
            return f"{_name(channel)} asks for approval only where the server does{base or ': nowhere'}."
        listed = ", ".join(wanted)
        return f"In {_name(channel)} these tools now run only once the asker approves: {listed}{base}."

    async def set(self, actor: ChatUser, channel: Channel, names: Sequence[str]) -> str:
        unknown = [
            name for name in names if self._registry.get(name) is None and name not in self._also_known
        ]
        note = ""
        if unknown and self._open_ended:
            note = f" ({', '.join(unknown)}: not a built-in tool; offered only if an MCP server provides it)"
        elif unknown:
            known = ", ".join(self._registry.names()) or "none"
            raise BadInput(f"Unknown tool(s): {', '.join(unknown)}. Known: {known}.")
        await self._admin.record(actor, "tools.set", _name(channel), {"tools": list(names)})
        await self._policies.set_tools(
            channel, list(dict.fromkeys(names)), by=f"{actor.platform}:{actor.user_id}"
        )
        listed = ", ".join(dict.fromkeys(names)) or "no tools"
        return f"{_name(channel)} now offers: {listed}.{note}"

    async def clear(self, actor: ChatUser, channel: Channel) -> str:
        await self._admin.record(actor, "tools.clear", _name(channel), {})
        await self._policies.set_tools(channel, None, by=f"{actor.platform}:{actor.user_id}")
        return f"{_name(channel)} uses the default tools again."


_PATTERN = re.compile(r"[A-Za-z0-9_.*?\[\]-]{1,64}")


def _name(channel: Channel) -> str:
    return ":".join(channel)


def parse_channel(text: str) -> Channel:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise BadInput(
            f"A channel looks like platform:workspace_id:channel_id (e.g. slack:T01:C02), not {text!r}."
        )
    return (parts[0], parts[1], parts[2])
