"""Slash commands: the `ai` group for everyone and the `ai-admin` group for admins (DESIGN.md §6).

Every handler acknowledges the interaction first (a deferral or the response itself), so Discord never shows
"The application did not respond", then does the work and edits the response or sends follow-ups. Errors a
user may see are ``BotError.user_message``, shown only to the caller (ephemeral).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bots.discord.approvals import PrivatePrompts
from bots.discord.buttons import AnswerButtons
from bots.discord.chunks import fit, split_message
from bots.discord.identity import (
    PLATFORM,
    channel_key,
    chat_user,
    interaction_is_admin,
    thread_key,
    thread_name,
)
from bots.discord.mentions import neutral_args
from bots.discord.render import render
from bots.discord.replier import NO_MENTIONS, ChannelSink, DiscordReplier, InteractionSink, Sink, to_file
from bots.inflight import InFlight
from core.commands.results import Reply
from core.domain.errors import BotError
from core.domain.types import ChatUser, ConversationKey, IncomingMessage

if TYPE_CHECKING:
    from bots.services import ChatServices

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
QUESTION_PREVIEW = 300
WAITING = "Waiting for your approval…"  # what /ai ask shows while its first tool approval is asked


def caller(interaction: Interaction) -> ChatUser:
    return chat_user(interaction.user, admin=interaction_is_admin(interaction))


def conversation_of(interaction: Interaction) -> ConversationKey:
    return channel_key(interaction.channel, interaction.guild)


async def show_error(interaction: Interaction, error: BotError, *, deferred_ephemeral: bool = True) -> None:
    """``error.user_message`` to the caller only, whatever state the interaction is in; one message, cut to
    Discord's limit should it quote something long."""
    text = fit(f"⚠️ {error.user_message}")
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
    elif interaction.response.type is not discord.InteractionResponseType.deferred_channel_message:
        await interaction.followup.send(text, ephemeral=True)  # the response is a message already
    elif deferred_ephemeral:
        await interaction.edit_original_response(content=text, attachments=[])
    else:  # a public "thinking…" response would show the error to everyone: an ephemeral note instead
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True)


async def deliver(interaction: Interaction, reply: Reply, *, deferred_ephemeral: bool) -> None:
    """A reply into a deferred interaction: text split at 2,000 characters, files on the last message.

    The deferral's visibility is fixed; when the reply wants the other one, the deferred response is removed
    and the reply goes out as follow-ups with the right visibility.
    """
    pieces = split_message(render(reply) or "Done.")
    files = [to_file(attachment) for attachment in reply.attachments]
    ephemeral = not reply.public
    first = 0
    if deferred_ephemeral == ephemeral:
        await interaction.edit_original_response(
            content=pieces[0], attachments=files if len(pieces) == 1 else [], allowed_mentions=NO_MENTIONS
        )
        first = 1
    else:
        await interaction.delete_original_response()
    for index in range(first, len(pieces)):
        last = index == len(pieces) - 1
        await interaction.followup.send(
            pieces[index],
            files=files if last else [],
            ephemeral=ephemeral,
            allowed_mentions=NO_MENTIONS,
        )


class AiCommands(app_commands.Group):
    """`/ai ask|chat|reset|usage|model|image|help`."""

    def __init__(
        self,
        services: ChatServices,
        *,
        inflight: InFlight,
        edit_interval: float,
        buttons: AnswerButtons | None = None,
        private: PrivatePrompts | None = None,
    ) -> None:
        super().__init__(name="ai", description="Talk to Threadwise, the AI assistant")
        self._services = services
        self._inflight = inflight
        self._edit_interval = edit_interval
        self._buttons = buttons
        self._private = private if private is not None else PrivatePrompts()

    async def _command(
        self, interaction: Interaction, action: Callable[[], Awaitable[Reply]], *, ephemeral: bool
    ) -> None:
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        with self._inflight.track():
            try:
                reply = await action()
            except BotError as error:
                await show_error(interaction, error, deferred_ephemeral=ephemeral)
                return
            await deliver(interaction, reply, deferred_ephemeral=ephemeral)

    async def _turn(
        self,
        interaction: Interaction,
        key: ConversationKey,
        prompt: str,
        sink: Sink,
        *,
        prefix: str = "",
        deferred_ephemeral: bool = False,
        on_refused: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        message = self._asking(interaction, key, prompt)

        async def private_error(error: BotError) -> None:
            if on_refused is not None:  # the turn failed before any answer: take the question back
                with contextlib.suppress(discord.HTTPException):
                    await on_refused()
            await show_error(interaction, error, deferred_ephemeral=deferred_ephemeral)

        replier = DiscordReplier(
            sink,
            prefix=prefix,
            on_error=private_error,
            edit_interval=self._edit_interval,
            buttons=None if deferred_ephemeral else self._buttons,  # none on a refusal only its asker sees
        )
        with self._inflight.track():
            await self._services.turns.handle(message, replier)

    @staticmethod
    def _asking(interaction: Interaction, key: ConversationKey, prompt: str) -> IncomingMessage:
        return IncomingMessage(
            key=key,
            user=caller(interaction),
            text=prompt,
            event_id=f"discord:interaction:{interaction.id}",
            received_at=datetime.now(UTC),
        )

    async def _refused(self, interaction: Interaction, key: ConversationKey, prompt: str) -> bool:
        """The turn's checks of the caller (ban, rate limit, length), before anything is shown in the channel:
        when they refuse, only the caller hears why (the turn says it, once) and True is returned."""
        if await self._services.turns.admit(self._asking(interaction, key, prompt)):
            return False
        await interaction.response.defer(ephemeral=True, thinking=True)
        sink = InteractionSink(interaction, ephemeral=True)
        await self._turn(interaction, key, prompt, sink, deferred_ephemeral=True)
        return True

    @app_commands.command(name="ask", description="Ask one question; the answer appears right here")
    @app_commands.describe(prompt="Your question")
    async def ask(self, interaction: Interaction, prompt: str) -> None:
        where = conversation_of(interaction)
        key = ConversationKey(PLATFORM, where.workspace_id, where.channel_id, f"ask:{interaction.id}")
        if await self._refused(interaction, key, prompt):
            return
        await interaction.response.defer(thinking=True)
        shown = self._services.commands.display(prompt)  # quoted above the answer: redacted like the history
        preview = shown if len(shown) <= QUESTION_PREVIEW else shown[: QUESTION_PREVIEW - 1] + "…"
        quoted = "\n".join(f"> {line}" for line in preview.splitlines() or [""])
        # a tool approval this turn needs is asked of the asker alone, in a follow-up only they see
        with self._private.holding(key.thread_id, interaction, f"{quoted}\n*{WAITING}*"):
            await self._turn(interaction, key, prompt, InteractionSink(interaction), prefix=f"{quoted}\n")

    @app_commands.command(name="chat", description="Start a conversation thread; keep talking in it")
    @app_commands.describe(prompt="How the conversation starts")
    async def chat(self, interaction: Interaction, prompt: str) -> None:
        if await self._refused(interaction, conversation_of(interaction), prompt):
            return  # nothing of a refused prompt is posted, and no thread is opened
        user = interaction.user
        shown = self._services.commands.display(prompt)  # redacted like everything the core stores
        opening = split_message(f"💬 **{user.display_name}**: {shown}")[0]
        callback = await interaction.response.send_message(opening, allowed_mentions=NO_MENTIONS)
        channel: Any = interaction.channel
        guild = interaction.guild
        key = channel_key(channel, guild)
        sink: Sink = ChannelSink(channel)
        if guild is not None and isinstance(channel, discord.TextChannel):
            try:
                starter = callback.resource
                if not isinstance(starter, discord.InteractionMessage):
                    starter = await interaction.original_response()
                thread = await starter.create_thread(name=thread_name(shown))
            except discord.HTTPException as exc:
                log.warning("could not open a thread for /ai chat in %s: %s", channel.id, exc)
            else:
                key, sink = thread_key(guild.id, channel.id, thread.id), ChannelSink(thread)
        neutral = f"💬 **{user.display_name}** started a conversation."

        async def take_back() -> None:  # refused (banned, rate limited, blocked): no trace of what was asked
            await interaction.edit_original_response(content=neutral)
            if isinstance(sink, ChannelSink) and isinstance(sink.channel, discord.Thread):
                await sink.channel.edit(name="Conversation")

        await self._turn(interaction, key, prompt, sink, on_refused=take_back)

    @app_commands.command(name="reset", description="Forget this conversation's history")
    async def reset(self, interaction: Interaction) -> None:
        commands = self._services.commands
        await self._command(
            interaction,
            lambda: commands.reset(caller(interaction), conversation_of(interaction)),
            ephemeral=True,
        )

    @app_commands.command(
        name="usage", description="What you have spent today and this month, and your limits"
    )
    async def usage(self, interaction: Interaction) -> None:
        commands = self._services.commands
        await self._command(
            interaction,
            lambda: commands.usage(caller(interaction), conversation_of(interaction)),
            ephemeral=True,
        )

    @app_commands.command(name="model", description="Show or change the model of this conversation")
    @app_commands.describe(name="Model name; leave empty to see the current one and the choices")
    async def model(self, interaction: Interaction, name: str = "") -> None:
        commands = self._services.commands
        await self._command(
            interaction,
            lambda: commands.set_model(caller(interaction), conversation_of(interaction), name),
            ephemeral=not name.strip(),
        )

    @app_commands.command(name="image", description="Generate an image")
    @app_commands.describe(prompt="What the image should show")
    async def image(self, interaction: Interaction, prompt: str) -> None:
        commands = self._services.commands
        await self._command(
            interaction,
            lambda: commands.image(caller(interaction), conversation_of(interaction), prompt),
            ephemeral=False,
        )

    @app_commands.command(name="forget", description="Erase your messages and personal data (asks first)")
    @app_commands.describe(confirm="Type confirm to erase; leave empty to see what would be erased")
    async def forget(self, interaction: Interaction, confirm: str = "") -> None:
        commands = self._services.commands
        await self._command(
            interaction,
            lambda: commands.forget(caller(interaction), conversation_of(interaction), confirm),
            ephemeral=True,
        )

    @app_commands.command(name="export", description="This conversation as a Markdown file, sent only to you")
    async def export(self, interaction: Interaction) -> None:
        commands = self._services.commands
        await self._command(
            interaction,
            lambda: commands.export(caller(interaction), conversation_of(interaction)),
            ephemeral=True,
        )

    @app_commands.command(name="help", description="What Threadwise can do")
    async def help(self, interaction: Interaction) -> None:
        try:
            reply = await self._services.commands.help(caller(interaction))
        except BotError as error:  # banned
            await show_error(interaction, error)
            return
        await interaction.response.send_message(
            split_message(render(reply))[0], ephemeral=True, allowed_mentions=NO_MENTIONS
        )


class AdminCommands(app_commands.Group):
    """`/ai-admin quota|report|ban|unban|moderation args:…`: Manage Server by default, THREADWISE_ADMINS."""

    def __init__(self, services: ChatServices, *, inflight: InFlight) -> None:
        super().__init__(
            name="ai-admin",
            description="Threadwise budgets, reports, bans and moderation (admins)",
            default_permissions=discord.Permissions(manage_guild=True),
        )
        self._services = services
        self._inflight = inflight

    async def _run(self, interaction: Interaction, command: str, args: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        with self._inflight.track():
            try:
                key = conversation_of(interaction)
                args = neutral_args(args)  # mentions as bare ids
                reply = await self._services.commands.admin(caller(interaction), key, command, args)
            except BotError as error:
                await show_error(interaction, error)
                return
            await deliver(interaction, reply, deferred_ephemeral=True)

    @app_commands.command(name="quota", description="Show, set or clear budgets")
    @app_commands.describe(args="e.g. show | set user @someone day $5 | clear channel here month")
    async def quota(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "quota", args)

    @app_commands.command(name="report", description="Cost report with a chart and a CSV")
    @app_commands.describe(args="e.g. today | month by model | 7d by user")
    async def report(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "report", args)

    @app_commands.command(name="ban", description="Ban a user from the assistant, or list bans")
    @app_commands.describe(args="e.g. @someone 7d spamming | list")
    async def ban(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "ban", args)

    @app_commands.command(name="unban", description="Lift a ban")
    @app_commands.describe(args="e.g. @someone")
    async def unban(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "unban", args)

    @app_commands.command(
        name="moderation", description="Recent moderation events, or a channel's thresholds"
    )
    @app_commands.describe(args="e.g. 20 user @someone action block | policy here violence block 0.5")
    async def moderation(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "moderation", args)

    @app_commands.command(name="tools", description="Which tools the assistant may use in a channel")
    @app_commands.describe(args="e.g. show | set here calculator,current_time | clear here")
    async def tools(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "tools", args)

    @app_commands.command(name="prompt", description="The persona (system prompt) of a channel or server")
    @app_commands.describe(args="show|set|clear <here|#channel|workspace> [--model M] [--tools a,b] <text>")
    async def prompt(self, interaction: Interaction, args: str = "") -> None:
        await self._run(interaction, "prompt", args)
