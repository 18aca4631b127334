"""Tool approval on Discord: the request is a message in the conversation's thread (or channel) with Approve /
Deny buttons. They are persistent ``DynamicItem``s whose custom id carries the approval id
(``tw:approve:<id>``), registered with ``client.add_dynamic_items``, so a click is handled after a restart or
by another process of the bot. A click is answered within Discord's 3 s: the asker's (or an admin's) by
updating the message to show the decision, anyone else's by an ephemeral refusal that changes nothing.

A `/ai ask` turn has no thread: its answer is the command's own response. Its request is an ephemeral
follow-up of that command (``PrivatePrompts``), seen only by the asker, who decides: nothing is posted in the
channel (where the bot may not even be allowed to post), and no one else is pinged."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
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


class PrivatePrompts:
    """The `/ai ask` commands whose turn runs now, by their conversation's thread id (``ask:<interaction>``):
    an approval that turn needs is asked in an ephemeral follow-up of the command (its token is valid for
    15 minutes, longer than an approval is waited for)."""

    def __init__(self) -> None:
        self._asking: dict[str, PrivatePrompt] = {}

    @contextlib.contextmanager
    def holding(self, thread_id: str, interaction: discord.Interaction[Any], waiting: str) -> Iterator[None]:
        """While the turn of ``interaction`` (conversation thread ``thread_id``) runs; ``waiting`` is what
        its response shows, should it still be "thinking…" when an approval is asked."""
        self._asking[thread_id] = PrivatePrompt(interaction, waiting)
        try:
            yield
        finally:
            self._asking.pop(thread_id, None)

    def of(self, thread_id: str) -> PrivatePrompt | None:
        return self._asking.get(thread_id)


class PrivatePrompt:
    """One `/ai ask` command whose approvals are asked privately."""

    def __init__(self, interaction: discord.Interaction[Any], waiting: str) -> None:
        self.interaction = interaction
        self._waiting = waiting
        self._shown = False  # its response shows something (it is no longer "thinking…")

    async def ask(self, text: str, view: discord.ui.View) -> discord.WebhookMessage:
        """``text`` and ``view`` in an ephemeral follow-up. The first follow-up of a deferred response would
        take the place of its "thinking…" (and be public, as the response is): while the response is still
        thinking, it is made to say ``waiting`` first (the answer replaces that later)."""
        if not self._shown:
            response = await self.interaction.original_response()
            if response.flags.loading:
                await self.interaction.edit_original_response(
                    content=self._waiting, allowed_mentions=NO_MENTIONS
                )
            self._shown = True
        return await self.interaction.followup.send(
            text, view=view, ephemeral=True, wait=True, allowed_mentions=NO_MENTIONS
        )

    async def edit(self, message_id: int, text: str) -> None:
        await self.interaction.followup.edit_message(
            message_id, content=text, view=None, allowed_mentions=NO_MENTIONS
        )


class DiscordApprovalPrompter:
    """The core's ApprovalPrompter on Discord; ``private``: the `/ai ask` turns, asked privately."""

    def __init__(
        self, client: discord.Client, button: type[Any], private: PrivatePrompts | None = None
    ) -> None:
        self._client = client
        self._button = button
        self._private = private if private is not None else PrivatePrompts()

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self._client.get_channel(channel_id) or await self._client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"Discord channel {channel_id} takes no messages")
        return channel

    async def ask(self, request: ApprovalRequest) -> ReplyLocation | None:
        key = request.key
        view = discord.ui.View(timeout=None)
        view.add_item(self._button(request.id, True))
        view.add_item(self._button(request.id, False))
        private = self._private.of(key.thread_id)
        if private is not None:
            return await self._ask_privately(request, view, private)
        target = int(key.thread_id) if key.thread_id.isdigit() else int(key.channel_id)
        channel = await self._channel(target)
        message = await channel.send(
            request_text(request),
            view=view,
            allowed_mentions=discord.AllowedMentions(users=[discord.Object(int(request.user.user_id))]),
        )
        view.stop()  # the buttons are dispatched as dynamic items, not through this view
        return {"channel": str(target), "message": str(message.id)}

    async def _ask_privately(
        self, request: ApprovalRequest, view: discord.ui.View, private: PrivatePrompt
    ) -> ReplyLocation:
        message = await private.ask(request_text(request), view)
        view.stop()  # the buttons are dispatched as dynamic items, not through this view
        return {"channel": str(message.channel.id), "message": str(message.id), "private": "yes"}

    async def close(
        self, request: ApprovalRequest, where: ReplyLocation | None, decision: ApprovalDecision
    ) -> None:
        if where is None:
            return
        text = outcome_text(request.tool, decision, request.timeout)
        if where.get("private"):  # an ephemeral follow-up: edited through its command, while that is known
            private = self._private.of(request.key.thread_id)
            if private is not None:
                await private.edit(int(where["message"]), text)
            return
        channel = await self._channel(int(where["channel"]))
        message = channel.get_partial_message(int(where["message"]))  # type: ignore[attr-defined]
        await message.edit(content=text, view=None, allowed_mentions=NO_MENTIONS)


def register_approvals(
    client: discord.Client, approvals: Approvals | None, private: PrivatePrompts | None = None
) -> DiscordApprovalPrompter | None:
    """Adds the persistent buttons to ``client`` and returns the prompter to register with ``approvals``
    (``private``: the `/ai ask` turns running now, whose requests are asked privately)."""
    if approvals is None:
        return None
    button = approval_buttons(approvals)
    client.add_dynamic_items(button)
    return DiscordApprovalPrompter(client, button, private)
