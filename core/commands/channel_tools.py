"""`/ai-admin tools …`: which tools the model may use in a channel."""

from __future__ import annotations

from core.admin.service import AdminService
from core.commands.parsing import channel_of, tool_names
from core.commands.results import Reply, lines
from core.commands.tenancy import AdminCall, within
from core.domain.errors import BadInput
from core.guards.channel_policy import Channel
from core.tools.governance import ToolGovernance

TOOLS_USAGE = (
    "Usage: `tools [show] [#channel]`, `tools set <#channel|here> calculator,current_time`, "
    "`tools set <#channel|here> none`, `tools clear <#channel|here>`, "
    "`tools approval <#channel|here> fetch_url,github__*` (or `none`)."
)


class ChannelToolCommands:
    def __init__(self, admin: AdminService, tools: ToolGovernance | None) -> None:
        self._admin = admin
        self._tools = tools

    async def run(self, call: AdminCall, words: list[str]) -> Reply:
        if self._tools is None:
            raise BadInput("Tools are switched off on this server.")
        action = words[0].lower() if words else "show"
        if action == "show":
            channel = self._shown_channel(call, words)
            if channel is not None:
                await within(self._admin, call, ":".join(channel), "tools.show")
            return Reply(lines(await self._tools.show(call.user, channel)))
        if action in ("set", "clear") and len(words) >= 2:
            channel = channel_of(words[1], call.key)
            await within(self._admin, call, ":".join(channel), f"tools.{action}")
            if action == "clear":
                return Reply(lines(await self._tools.clear(call.user, channel)))
            return Reply(lines(await self._tools.set(call.user, channel, tool_names(words[2:]))))
        if action == "approval" and len(words) >= 2:
            channel = channel_of(words[1], call.key)
            await within(self._admin, call, ":".join(channel), "tools.approval")
            patterns = [
                part.strip()
                for word in words[2:]
                for part in word.split(",")
                if part.strip() and part.strip().lower() != "none"
            ]
            return Reply(lines(await self._tools.approval(call.user, channel, patterns)))
        raise BadInput(TOOLS_USAGE)

    @staticmethod
    def _shown_channel(call: AdminCall, words: list[str]) -> Channel | None:
        """The channel `tools show` is about: the one named, else (for a workspace admin) this one."""
        if len(words) > 1:
            return channel_of(words[1], call.key)
        if call.tenant is not None:
            return (call.key.platform, call.key.workspace_id, call.key.channel_id)
        return None
