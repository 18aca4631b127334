"""The Discord Replier: typing indicator, one message edited as the answer streams (at most about once a
second), split over several messages past 2,000 characters, files sent as attachments.

Where the messages go is a ``Sink``: a channel or thread (``ChannelSink``), a thread opened lazily from the
message that mentioned the bot (``ThreadStarterSink``), or an interaction's original response and its
follow-ups (``InteractionSink``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import discord

from bots.discord.chunks import MESSAGE_LIMIT, split_message
from core.domain.errors import BotError
from core.domain.types import Attachment

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0  # seconds between edits of one streamed reply (Discord allows about 5 edits / 5 s)
TYPING_REFRESH = 8.0  # Discord shows "typing…" for 10 s after each trigger
NO_MENTIONS = discord.AllowedMentions.none()


def to_file(attachment: Attachment) -> discord.File:
    return discord.File(io.BytesIO(attachment.data), filename=attachment.name)


class Sink(Protocol):
    """Where a reply's messages are posted and edited."""

    async def typing(self) -> None: ...

    async def send(self, content: str, files: list[discord.File]) -> Any:
        """Post a new message; returns a handle ``edit`` accepts."""

    async def edit(self, handle: Any, content: str) -> None: ...

    async def delete(self, handle: Any) -> None: ...


class ChannelSink:
    """Messages in a text channel, thread or DM."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def typing(self) -> None:
        await self.channel.typing()

    async def send(self, content: str, files: list[discord.File]) -> discord.Message:
        return await self.channel.send(content or None, files=files, allowed_mentions=NO_MENTIONS)

    async def edit(self, handle: Any, content: str) -> None:
        await handle.edit(content=content, allowed_mentions=NO_MENTIONS)

    async def delete(self, handle: Any) -> None:
        await handle.delete()


class ThreadStarterSink(ChannelSink):
    """Answers a mention in a channel inside a thread opened from that message (thread id = message id), on
    first use, so a duplicate delivery that is never answered opens no thread. Falls back to answering in the
    channel when the thread cannot be opened (no permission, or the channel takes no threads)."""

    def __init__(self, message: discord.Message, name: str) -> None:
        super().__init__(message.channel)
        self._message = message
        self._name = name
        self._opened = False
        self._lock = asyncio.Lock()

    async def _target(self) -> discord.abc.Messageable:
        async with self._lock:
            if not self._opened:
                self._opened = True
                try:
                    self.channel = await self._message.create_thread(name=self._name)
                except discord.HTTPException as exc:
                    guild = self._message.guild
                    existing = guild.get_thread(self._message.id) if guild is not None else None
                    if existing is not None:
                        self.channel = existing
                    else:
                        log.warning("could not open a thread for message %s: %s", self._message.id, exc)
            return self.channel

    async def typing(self) -> None:
        await (await self._target()).typing()

    async def send(self, content: str, files: list[discord.File]) -> discord.Message:
        channel = await self._target()
        return await channel.send(content or None, files=files, allowed_mentions=NO_MENTIONS)


class InteractionSink:
    """An interaction's deferred original response (the first message) and follow-ups (the rest)."""

    def __init__(self, interaction: discord.Interaction[Any], *, ephemeral: bool = False) -> None:
        self._interaction = interaction
        self._ephemeral = ephemeral
        self._original_used = False

    async def typing(self) -> None:
        """The deferred response already shows "<bot> is thinking…"."""

    async def send(self, content: str, files: list[discord.File]) -> Any:
        if not self._original_used:
            self._original_used = True
            await self._interaction.edit_original_response(
                content=content, attachments=files, allowed_mentions=NO_MENTIONS
            )
            return None  # None: the original response
        return await self._interaction.followup.send(
            content, files=files, ephemeral=self._ephemeral, allowed_mentions=NO_MENTIONS, wait=True
        )

    async def edit(self, handle: Any, content: str) -> None:
        if handle is None:
            await self._interaction.edit_original_response(content=content, allowed_mentions=NO_MENTIONS)
        else:
            await handle.edit(content=content, allowed_mentions=NO_MENTIONS)

    async def delete(self, handle: Any) -> None:
        if handle is None:
            await self._interaction.edit_original_response(content="\u200b")
        else:
            await handle.delete()


class DiscordReplier:
    """Implements core.types.Replier over a Sink; see the module docstring."""

    def __init__(
        self,
        sink: Sink,
        *,
        notes: tuple[str, ...] = (),
        prefix: str = "",
        on_error: Callable[[BotError], Awaitable[None]] | None = None,
        edit_interval: float = EDIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self._notes = notes
        self._prefix = prefix
        self._on_error = on_error
        self._interval = edit_interval
        self._clock = clock
        self._sent: list[tuple[Any, str]] = []  # (handle, content) of each message of this reply
        self._pending: str | None = None
        self._last_flush = float("-inf")
        self._pump_task: asyncio.Task[None] | None = None
        self._sleeping = False
        self._shown = ""  # the full text the messages show
        self._typing_task: asyncio.Task[None] | None = None
        self._write = asyncio.Lock()
        self._finished = False

    # -- Replier

    async def start(self) -> None:
        self._typing_task = asyncio.create_task(self._keep_typing())

    async def update(self, text: str) -> None:
        """Never waits for Discord: the text is shown by a background pump, at most once per interval."""
        if self._finished or not text.strip():
            return
        self._pending = self._prefix + text
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(self._pump())

    async def status(self, text: str) -> None:
        if not self._sent and not self._finished:
            await self.update(f"*{text}*")

    async def finish(self, text: str) -> None:
        await self._close(self._prefix + self._with_notes(text))

    async def attach(self, attachment: Attachment) -> None:
        async with self._write:
            self._stop_typing()
            await self.sink.send("", [to_file(attachment)])

    async def error(self, error: BotError) -> None:
        """Shown privately through ``on_error`` when nothing of the reply is visible yet, else under it."""
        if self._on_error is not None and not self._sent:
            self._finished = True
            await self._stop_pump()
            if not self._sent:
                self._stop_typing()
                await self._on_error(error)
                return
        await self._close(self._with_notes(f"⚠️ {error.user_message}"), append=True)

    # -- internals

    def _with_notes(self, text: str) -> str:
        return "\n\n".join([text, *(f"_{note}_" for note in self._notes)])

    async def _stop_pump(self) -> None:
        pump, self._pump_task = self._pump_task, None
        if pump is not None and not pump.done():
            if self._sleeping:
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _close(self, text: str, *, append: bool = False) -> None:
        self._finished = True
        await self._stop_pump()
        shown = self._shown
        if append and shown and not shown.removeprefix(self._prefix).startswith("*"):
            text = f"{shown}\n\n{text}"
        elif append:
            text = self._prefix + text
        if not text.strip():
            text = "_(no answer)_"  # Discord refuses empty messages
        self._pending = text
        try:
            await self._flush()
        finally:
            self._stop_typing()

    async def _pump(self) -> None:
        while self._pending is not None and not self._finished:
            wait = self._last_flush + self._interval - self._clock()
            if wait > 0:
                self._sleeping = True
                try:
                    await asyncio.sleep(wait)
                finally:
                    self._sleeping = False
            try:
                await self._flush()
            except discord.HTTPException as exc:  # the next update or finish tries again
                log.warning("could not show a streamed update: %s", exc)

    async def _flush(self) -> None:
        async with self._write:
            text = self._pending
            if text is None:
                return
            self._pending = None
            self._last_flush = self._clock()
            await self._render(text)
            self._shown = text

    async def _render(self, text: str) -> None:
        pieces = split_message(text, MESSAGE_LIMIT)
        for index, piece in enumerate(pieces):
            if index < len(self._sent):
                handle, shown = self._sent[index]
                if shown != piece:
                    await self.sink.edit(handle, piece)
                    self._sent[index] = (handle, piece)
            else:
                self._stop_typing()
                handle = await self.sink.send(piece, [])
                self._sent.append((handle, piece))
        for handle, _ in self._sent[len(pieces) :]:  # the text got shorter (a tool round restarted it)
            await self.sink.delete(handle)
        del self._sent[len(pieces) :]

    async def _keep_typing(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            while True:
                await self.sink.typing()
                await asyncio.sleep(TYPING_REFRESH)

    def _stop_typing(self) -> None:
        if self._typing_task is not None:
            self._typing_task.cancel()
            self._typing_task = None


async def run_quietly(what: str, action: Callable[[], Awaitable[Any]]) -> None:
    """Best effort (e.g. an error notice on a platform that already failed): log, never raise."""
    try:
        await action()
    except discord.HTTPException as exc:
        log.warning("could not %s: %s", what, exc)
