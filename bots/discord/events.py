"""Messages from the gateway that start or continue a conversation.

- In a thread: a turn when the thread already holds a conversation (e.g. one `/ai chat` opened) or when the
  bot is mentioned; no mention needed after that.
- A mention in a text channel: the bot opens a thread from that message (thread id = message id) and answers
  there; the thread is the conversation.
- A DM: every message is a turn of the DM's conversation.
Bot, webhook and system messages are ignored. De-duplication, per-conversation ordering, guards and budgets
belong to the core (``ConversationService.handle``); the adapter downloads the files of a message while
earlier messages of its conversation run and hands messages over in arrival order (bots/arrival.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import discord

from bots.arrival import Arrivals, Place
from bots.discord.attachments import ReadAttachments, read_attachments
from bots.discord.buttons import AnswerButtons
from bots.discord.config import DiscordOptions
from bots.discord.identity import (
    chat_user,
    dm_key,
    member_is_admin,
    readable_text,
    thread_key,
    thread_name,
    without_mention,
)
from bots.discord.replier import ChannelSink, DiscordReplier, Sink, ThreadStarterSink
from bots.downloads import DownloadSlots
from bots.inflight import InFlight
from core.domain.types import ConversationKey, IncomingMessage
from core.turn.service import TurnOutcome

if TYPE_CHECKING:
    from bots.services import ChatServices

log = logging.getLogger(__name__)

TALKING_TYPES = (discord.MessageType.default, discord.MessageType.reply)
THREAD_PARENTS = (discord.TextChannel, discord.VoiceChannel, discord.StageChannel)


class MessageEvents:
    """``on_message`` of the Discord client."""

    def __init__(
        self,
        services: ChatServices,
        client: discord.Client,
        options: DiscordOptions,
        *,
        inflight: InFlight,
        buttons: AnswerButtons | None = None,
    ) -> None:
        self._services = services
        self._buttons = buttons
        self._client = client
        self._api_url = options.api_url
        self._max_files = options.max_files
        self._max_file_bytes = options.max_file_bytes
        self._inflight = inflight
        self._edit_interval = options.edit_interval
        self._arrivals = Arrivals()
        self._downloads = DownloadSlots()

    async def on_message(self, message: discord.Message) -> None:
        me = self._client.user
        if me is None or message.author.bot or message.webhook_id is not None:
            return
        if message.type not in TALKING_TYPES or message.is_system():
            return
        mentioned = any(user.id == me.id for user in message.mentions)
        channel: Any = message.channel
        if isinstance(channel, discord.PartialMessageable) and message.guild is not None:
            channel = await self._resolve(channel)
        sink: Sink
        if message.guild is None:
            key, sink, needs_conversation = dm_key(channel.id), ChannelSink(channel), False
        elif isinstance(channel, discord.Thread) and channel.parent_id is not None:
            key = thread_key(message.guild.id, channel.parent_id, channel.id)
            sink, needs_conversation = ChannelSink(channel), not mentioned
        elif mentioned and isinstance(channel, THREAD_PARENTS):
            key = thread_key(message.guild.id, channel.id, message.id)
            sink = ThreadStarterSink(message, thread_name(without_mention(message.content, me.id)))
            needs_conversation = False
        else:
            return
        with self._inflight.track():
            await self._handle(message, key, sink, me.id, needs_conversation)

    async def _handle(
        self,
        message: discord.Message,
        key: ConversationKey,
        sink: Sink,
        bot_id: int,
        needs_conversation: bool,
    ) -> None:
        async with self._arrivals.arrive(key) as place:
            first = place.first
            if needs_conversation and not await self._services.commands.is_conversation(key):
                if not first:  # not yet a conversation: maybe once the messages ahead of this one are through
                    await self._when_conversation(message, key, sink, bot_id, place)
                return
            asking = self._asking(message, key, bot_id)
            read = await self._read(message, asking)  # while earlier messages of ``key`` run
            async with place:
                await self._turn(asking, sink, read)

    async def _when_conversation(
        self, message: discord.Message, key: ConversationKey, sink: Sink, bot_id: int, place: Place
    ) -> None:
        async with place:
            if await self._services.commands.is_conversation(key):
                asking = self._asking(message, key, bot_id)
                await self._turn(asking, sink, await self._read(message, asking))

    async def _resolve(self, channel: discord.PartialMessageable) -> Any:
        """A channel the cache does not know (e.g. a thread from before a restart that was not announced)."""
        try:
            return await self._client.fetch_channel(channel.id)
        except discord.HTTPException as exc:
            log.warning("could not look up channel %s: %s", channel.id, exc)
            return channel

    async def _read(self, message: discord.Message, asking: IncomingMessage) -> ReadAttachments | None:
        """The files of ``message``; None when the user may not be answered (banned, too fast, too long):
        nothing is downloaded for them."""
        if not await self._services.turns.admit(asking):
            return None
        async with self._downloads.slot(asking.user.user_id):
            return await read_attachments(
                list(message.attachments),
                max_bytes=self._max_file_bytes,
                max_count=self._max_files,
                api_url=self._api_url,
                documents=self._services.documents,
                key=asking.key,
            )

    @staticmethod
    def _asking(message: discord.Message, key: ConversationKey, bot_id: int) -> IncomingMessage:
        """The message as the gateway event gives it, without its files."""
        return IncomingMessage(
            key=key,
            user=chat_user(message.author, admin=member_is_admin(message.author)),
            text=readable_text(message, bot_id),
            event_id=f"discord:{message.id}",
            received_at=datetime.now(UTC),
        )

    async def _turn(self, asking: IncomingMessage, sink: Sink, read: ReadAttachments | None) -> None:
        read = read or ReadAttachments((), ())  # refused at admission: the turn says why
        incoming = replace(asking, attachments=read.attachments)
        replier = DiscordReplier(
            sink, notes=read.notices, edit_interval=self._edit_interval, buttons=self._buttons
        )
        outcome = await self._services.turns.handle(incoming, replier)
        if outcome is TurnOutcome.DUPLICATE:
            log.info("message %s was already answered", asking.event_id)
