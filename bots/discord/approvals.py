"""Tool approval on Discord: the request is a message in the conversation's thread (or channel) with Approve /
Deny buttons. They are persistent ``DynamicItem``s whose custom id carries the approval id
(``tw:approve:<id>``), registered with ``client.add_dynamic_items``, so a click is handled after a restart or
by another process of the bot. A click is answered within Discord's 3 s: the asker's (or an admin's) by
updating the message to show the decision, anyone else's by an ephemeral refusal that changes nothing."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bots.discord.identity import DM, chat_user, interaction_is_admin
from bots.discord.replier import NO_MENTIONS
from core.domain.ports import ApprovalDecision, ApprovalRequest, ReplyLocation
from core.tools.approvals import APPROVED, DENIED, STOPPED, TIMED_OUT, Approvals, Click, outcome_sentence

log = logging.getLogger(__name__)

SHOWN_ARGUMENTS = 1200  # a Discord message holds 2,000 characters


def request_text(request: ApprovalRequest) -> str:
    arguments = (request.arguments or "{}").replace("```", "` ` `")[:SHOWN_ARGUMENTS]
    return (
        f"\U0001f512 <@{request.user.user_id}>, I would like to run the tool "
        f"**{discord.utils.escape_markdown(request.tool)}** with:\n"
        f"```json\n{arguments}\n```\nIt runs only if you approve (within {request.timeout:g} s)."
    )


MARKS = {  # Discord shows emoji codes sent by a bot as typed: the characters themselves
    APPROVED: "\u2705",  # white heavy check mark
    DENIED: "\U0001f6ab",  # no entry sign
    TIMED_OUT: "\u231b",  # hourglass
    STOPPED: "\u23f9\ufe0f",  # stop button
}


def outcome_text(tool: str, decision: ApprovalDecision, timeout: float) -> str:
    sentence = outcome_sentence(f"**{discord.utils.escape_markdown(tool)}**", decision, timeout)
    mark = MARKS.get(decision.status)
    return f"{mark} {sentence}" if mark else sentence


def approval_buttons(approvals: Approvals) -> type[Any]:
    """The Approve / Deny button class, answering through ``approvals``."""

    async def answer(interaction: discord.Interaction[Any], approval_id: int, approve: bool) -> None:
        user = chat_user(interaction.user, admin=interaction_is_admin(interaction))
        workspace = str(interaction.guild_id) if interaction.guild_id is not None else DM
        try:
            click = await approvals.decide(approval_id, user, approve=approve, workspace_id=workspace)
        except Exception:
            log.exception("could not record an approval click")
            await interaction.response.send_message(
                "Sorry, I could not record that. Please try again.", ephemeral=True
            )
            return
        if click.outcome == "decided" and click.decision is not None and click.request is not None:
            text = outcome_text(click.request.tool, click.decision, click.request.timeout)
            await interaction.response.edit_message(content=text, view=None, allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.send_message(_refusal(click), ephemeral=True)

    class Decision(
        discord.ui.DynamicItem[discord.ui.Button[Any]],
        template=r"tw:(?P<verb>approve|deny):(?P<id>[0-9]{1,18})",
    ):
        """Approve (``approve``) or Deny of approval ``approval_id``."""

        def __init__(self, approval_id: int, approve: bool) -> None:
            verb = "approve" if approve else "deny"
            style = discord.ButtonStyle.success if approve else discord.ButtonStyle.danger
            super().__init__(
                discord.ui.Button(label=verb.capitalize(), style=style, custom_id=f"tw:{verb}:{approval_id}")
            )
            self.approval_id = approval_id
            self.approve = approve

        @classmethod
        async def from_custom_id(
            cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
        ) -> Decision:
            return cls(int(match["id"]), match["verb"] == "approve")

        async def callback(self, interaction: discord.Interaction[Any]) -> None:
            await answer(interaction, self.approval_id, self.approve)

    return Decision


def _refusal(click: Click) -> str:
    if click.outcome == "refused" and click.request is not None:
        return (
            f"Sorry, only <@{click.request.user.user_id}> (who asked) or an admin can approve or deny this."
        )
    if click.outcome == "closed" and click.decision is not None and click.request is not None:
        return "This request is already closed: " + outcome_text(
            click.request.tool, click.decision, click.request.timeout
        )
    return "This approval request is no longer known."


class DiscordApprovalPrompter:
    """The core's ApprovalPrompter on Discord."""

    def __init__(self, client: discord.Client, button: type[Any]) -> None:
        self._client = client
        self._button = button

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self._client.get_channel(channel_id) or await self._client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"Discord channel {channel_id} takes no messages")
        return channel

    async def ask(self, request: ApprovalRequest) -> ReplyLocation | None:
        key = request.key
        target = int(key.thread_id) if key.thread_id.isdigit() else int(key.channel_id)
        view = discord.ui.View(timeout=None)
        view.add_item(self._button(request.id, True))
        view.add_item(self._button(request.id, False))
        channel = await self._channel(target)
        message = await channel.send(
            request_text(request),
            view=view,
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(int(request.user.user_id))]),
        )
        view.stop()  # the buttons are dispatched as dynamic items, not through this view
        return {"channel": str(target), "message": str(message.id)}

    async def close(
        self, request: ApprovalRequest, where: ReplyLocation | None, decision: ApprovalDecision
    ) -> None:
        if where is None:
            return
        channel = await self._channel(int(where["channel"]))
        message = channel.get_partial_message(int(where["message"]))  # type: ignore[attr-defined]
        await message.edit(
            content=outcome_text(request.tool, decision, request.timeout),
            view=None,
            allowed_mentions=NO_MENTIONS,
        )


def register_approvals(client: discord.Client, approvals: Approvals | None) -> DiscordApprovalPrompter | None:
    """Adds the persistent buttons to ``client`` and returns the prompter to register with ``approvals``."""
    if approvals is None:
        return None
    button = approval_buttons(approvals)
    client.add_dynamic_items(button)
    return DiscordApprovalPrompter(client, button)
