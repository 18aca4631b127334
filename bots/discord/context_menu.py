"""The message context-menu command "Ask Threadwise" (Apps -> Ask Threadwise on any message): what the Slack
shortcut does. The interaction is acknowledged at once (an ephemeral "thinking…" only the user sees), then a
turn whose text is the message and up to CONTEXT_MESSAGES messages before it in its channel or thread
(core/commands/ask_about.py), answered in a thread opened from that message (as a mention in a channel is),
in the thread it is in, or in the DM. The ephemeral response then points at the answer.

It goes through the normal turn: the interaction id is the event id (a redelivered interaction is answered
once; the tree's admission drops it before), the ban and rate-limit guards run before Discord is asked for
history, and the text is redacted, moderated and budgeted like anything typed. A refusal before anything is
posted is shown to the user alone.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bots.discord.buttons import AnswerButtons
from bots.discord.commands import Interaction, caller, show_error
from bots.discord.identity import dm_key, readable_text, thread_key, thread_name
from bots.discord.replier import ChannelSink, DiscordReplier, InteractionSink, Sink, ThreadStarterSink
from bots.inflight import InFlight
from core.commands.ask_about import CONTEXT_MESSAGES, Quoted, ask_about_text
from core.domain.errors import BotError
from core.domain.types import ConversationKey, IncomingMessage

if TYPE_CHECKING:
    from bots.services import ChatServices

log = logging.getLogger(__name__)

MENU_NAME = "Ask Threadwise"
THREAD_PARENTS = (discord.TextChannel,)


class AskMenu:
    """``command`` is the context menu to add to the command tree."""

    def __init__(
        self,
        services: ChatServices,
        *,
        inflight: InFlight,
        edit_interval: float,
        buttons: AnswerButtons | None = None,
    ) -> None:
        """``buttons``: the answer's buttons (Stop, 👍 / 👎, Retry), as under a mention's answer."""
        self._services = services
        self._inflight = inflight
        self._edit_interval = edit_interval
        self._buttons = buttons
        self.command = app_commands.ContextMenu(name=MENU_NAME, callback=self.ask)

    async def ask(self, interaction: Interaction, message: discord.Message) -> None:
        bot_id = interaction.client.user.id if interaction.client.user is not None else 0
        key, sink, where = self._target(interaction, message)
        text = readable_text(message, bot_id)
        asking = IncomingMessage(
            key=key,
            user=caller(interaction),
            text=ask_about_text(Quoted(message.author.display_name, text), (), where=where),
            event_id=f"discord:interaction:{interaction.id}",
            received_at=datetime.now(UTC),
        )
        await interaction.response.defer(ephemeral=True, thinking=True)
        with self._inflight.track():
            if not await self._services.turns.admit(asking):  # banned, too fast: told privately, nothing read
                replier = DiscordReplier(
                    InteractionSink(interaction, ephemeral=True), edit_interval=self._edit_interval
                )
                await self._services.turns.handle(asking, replier)
                return
            earlier = await self._earlier(message, bot_id)
            asking = IncomingMessage(
                key=key,
                user=asking.user,
                text=ask_about_text(Quoted(self._author(message, bot_id), text), earlier, where=where),
                event_id=asking.event_id,
                received_at=asking.received_at,
            )
            told = False

            async def privately(error: BotError) -> None:
                nonlocal told
                told = True
                await show_error(interaction, error)

            replier = DiscordReplier(
                sink, on_error=privately, edit_interval=self._edit_interval, buttons=self._buttons
            )
            await self._services.turns.handle(asking, replier)
            if not told:
                place = getattr(sink, "channel", None)
                pointer = f" in {place.mention}" if isinstance(place, discord.Thread) else ""
                with contextlib.suppress(discord.HTTPException):
                    await interaction.edit_original_response(content=f"Answered{pointer}.")

    def _target(
        self, interaction: Interaction, message: discord.Message
    ) -> tuple[ConversationKey, Sink, str]:
        """Where the answer goes: a thread opened from a channel message, the thread it is in, the DM."""
        channel: Any = message.channel
        guild = interaction.guild
        if guild is None:
            return dm_key(channel.id), ChannelSink(channel), "Discord conversation"
        if isinstance(channel, discord.Thread) and channel.parent_id is not None:
            return thread_key(guild.id, channel.parent_id, channel.id), ChannelSink(channel), "Discord thread"
        if isinstance(channel, THREAD_PARENTS):
            shown = self._services.commands.display(message.content)  # redacted like everything stored
            name = thread_name(f"About: {shown}" if shown.strip() else "Threadwise")
            return (
                thread_key(guild.id, channel.id, message.id),
                ThreadStarterSink(message, name),
                "Discord channel",
            )
        key = ConversationKey("discord", str(guild.id), str(channel.id), str(channel.id))
        return key, ChannelSink(channel), "Discord channel"

    async def _earlier(self, message: discord.Message, bot_id: int) -> list[Quoted]:
        """Up to CONTEXT_MESSAGES messages before ``message`` in its channel or thread, oldest first (none
        when the bot may not read the history)."""
        found: list[Quoted] = []
        try:
            async for earlier in message.channel.history(limit=CONTEXT_MESSAGES, before=message):
                found.append(Quoted(self._author(earlier, bot_id), readable_text(earlier, bot_id)))
        except discord.HTTPException as exc:
            log.info("cannot read the history of %s: %s", message.channel.id, exc)
        return found[::-1]

    @staticmethod
    def _author(message: discord.Message, bot_id: int) -> str:
        if message.author.id == bot_id:
            return "you (the assistant)"
        if message.author.bot:
            return "a bot"
        return message.author.display_name
