"""The Discord Replier: the shared pump (bots/streaming.py) over a ``DiscordSink``: typing indicator, one
message edited as the answer streams (at most about once a second), split over several messages past 2,000
characters, files sent as attachments.

Where the messages go is a ``Sink``: a channel or thread (``ChannelSink``), a thread opened lazily from the
message that mentioned the bot (``ThreadStarterSink``), or an interaction's original response and its
follow-ups (``InteractionSink``).

Buttons (bots/discord/buttons.py), once the core names the answer (``answering``): Stop on the reply's first
message while it streams; when it is complete, 👍 / 👎 / Retry on its last message and Stop gone; after an
error, Stop gone and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import discord

from bots.discord.buttons import AnswerButtons
from bots.discord.chunks import SPLITTING
from bots.streaming import StreamingReply
from core.domain.errors import BotError
from core.domain.types import Attachment, ConversationKey

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.0  # seconds between edits of one streamed reply (Discord allows about 5 edits / 5 s)
NO_ANSWER = "_(no answer)_"  # Discord refuses empty messages
TYPING_REFRESH = 8.0  # Discord shows "typing…" for 10 s after each trigger
NO_MENTIONS = discord.AllowedMentions.none()


def to_file(attachment: Attachment) -> discord.File:
    return discord.File(io.BytesIO(attachment.data), filename=attachment.name)


class Keep(enum.Enum):
    """A message's buttons stay as they are (the default of an edit)."""

    KEEP = enum.auto()


KEEP = Keep.KEEP
Buttons = discord.ui.View | None | Keep  # a message's new buttons: a view's, none, or as they are


def _with_view(view: Buttons) -> dict[str, Any]:
    """``view=`` only when it changes something (posting: only when there are buttons)."""
    return {} if view is KEEP else {"view": view}


class Sink(Protocol):
    """Where a reply's messages are posted and edited."""

    async def typing(self) -> None: ...

    async def send(self, content: str, files: list[discord.File], view: discord.ui.View | None = None) -> Any:
        """Post a new message (with the buttons of ``view``); returns a handle ``edit`` accepts."""

    async def edit(self, handle: Any, content: str, view: Buttons = KEEP) -> None: ...

    async def show_buttons(self, handle: Any, view: discord.ui.View | None) -> None:
        """The buttons under the message ``handle``: ``view``'s, or none."""

    async def delete(self, handle: Any) -> None: ...


class ChannelSink:
    """Messages in a text channel, thread or DM."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def typing(self) -> None:
        await self.channel.typing()

    async def send(
        self, content: str, files: list[discord.File], view: discord.ui.View | None = None
    ) -> discord.Message:
        return await self.channel.send(
            content or None, files=files, allowed_mentions=NO_MENTIONS, **_with_view(view or KEEP)
        )

    async def edit(self, handle: Any, content: str, view: Buttons = KEEP) -> None:
        await handle.edit(content=content, allowed_mentions=NO_MENTIONS, **_with_view(view))

    async def show_buttons(self, handle: Any, view: discord.ui.View | None) -> None:
        await handle.edit(view=view)

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
        self._opening: asyncio.Future[discord.abc.Messageable] | None = None

    async def _target(self) -> discord.abc.Messageable:
        # Opened once, in a task of its own: the typing loop that starts it is cancelled when the first
        # message is posted, and that must not leave the reply in the channel while the thread exists.
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> discord.abc.Messageable:
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

    async def send(
        self, content: str, files: list[discord.File], view: discord.ui.View | None = None
    ) -> discord.Message:
        channel = await self._target()
        return await channel.send(
            content or None, files=files, allowed_mentions=NO_MENTIONS, **_with_view(view or KEEP)
        )


class InteractionSink:
    """An interaction's deferred original response (the first message) and follow-ups (the rest)."""

    def __init__(self, interaction: discord.Interaction[Any], *, ephemeral: bool = False) -> None:
        self._interaction = interaction
        self._ephemeral = ephemeral
        self._original_used = False

    async def typing(self) -> None:
        """The deferred response already shows "<bot> is thinking…"."""

    async def send(self, content: str, files: list[discord.File], view: discord.ui.View | None = None) -> Any:
        if not self._original_used:
            self._original_used = True
            await self._interaction.edit_original_response(
                content=content, attachments=files, allowed_mentions=NO_MENTIONS, **_with_view(view or KEEP)
            )
            return None  # None: the original response
        return await self._interaction.followup.send(
            content,
            files=files,
            ephemeral=self._ephemeral,
            allowed_mentions=NO_MENTIONS,
            wait=True,
            **_with_view(view or KEEP),
        )

    async def edit(self, handle: Any, content: str, view: Buttons = KEEP) -> None:
        if handle is None:
            await self._interaction.edit_original_response(
                content=content, allowed_mentions=NO_MENTIONS, **_with_view(view)
            )
        else:
            await handle.edit(content=content, allowed_mentions=NO_MENTIONS, **_with_view(view))

    async def show_buttons(self, handle: Any, view: discord.ui.View | None) -> None:
        if handle is None:
            await self._interaction.edit_original_response(view=view)
        else:
            await handle.edit(view=view)

    async def delete(self, handle: Any) -> None:
        if handle is None:
            await self._interaction.edit_original_response(content="\u200b")
        else:
            await handle.delete()


class DiscordSink:
    """A reply through a ``Sink``: "typing…" refreshed until the first message, ``prefix`` ahead of the text
    (e.g. the quoted question of `/ai ask`), ``notes`` under the final text and under an error, a status only
    while nothing is posted yet."""

    splitting = SPLITTING
    transient: tuple[type[Exception], ...] = (discord.HTTPException,)

    def __init__(self, sink: Sink, *, notes: tuple[str, ...] = (), prefix: str = "") -> None:
        self.sink = sink
        self._notes = notes
        self._prefix = prefix
        self._typing: asyncio.Task[None] | None = None
        self.first_view: discord.ui.View | None = None  # the buttons of the reply's first message (Stop)
        # while the complete reply is shown: the buttons its messages get, by index, with that very post
        # or edit; what no post or edit took (the text of that message did not change) is left here
        self.closing: dict[int, discord.ui.View | None] = {}
        self._handles: list[Any] = []  # the reply's messages, as the pump has them

    async def begin(self) -> None:
        self._typing = asyncio.create_task(self._keep_typing())

    async def native_status(self, text: str) -> bool:
        return False

    async def post(self, text: str) -> Any:
        self._stop_typing()
        index = len(self._handles)
        default = self.first_view if index == 0 else None
        handle = await self.sink.send(text, [], self.closing.pop(index, default))
        self._handles.append(handle)
        return handle

    async def edit(self, handle: object, text: str) -> None:
        index = self._index(handle)
        await self.sink.edit(handle, text, self.closing.pop(index, KEEP) if index is not None else KEEP)

    def locate(self, handle: object) -> dict[str, str] | None:
        if isinstance(handle, discord.Message):
            return {"channel": str(handle.channel.id), "message": str(handle.id)}
        return None  # an interaction's own response: reachable only through its token, for 15 minutes

    async def delete(self, handle: object) -> None:
        index = self._index(handle)
        if index is not None:
            del self._handles[index]
        await self.sink.delete(handle)

    def _index(self, handle: object) -> int | None:
        return next((i for i, mine in enumerate(self._handles) if mine is handle), None)

    async def upload(self, attachment: Attachment) -> None:
        self._stop_typing()
        await self.sink.send("", [to_file(attachment)])

    async def announce(self) -> None:
        """The notes are part of the final text."""

    async def end(self) -> None:
        self._stop_typing()

    def streaming(self, text: str, status: str | None, posted: bool) -> str | None:
        if status is not None and not posted:
            return f"{self._prefix}*{status}*"
        return self._prefix + text if text.strip() else None

    def final(self, text: str) -> str:
        shown = self._prefix + self._with_notes(text)
        return shown if shown.strip() else NO_ANSWER

    def failure(self, message: str, streamed: str, shown: str) -> str:
        warning = self._with_notes(f"⚠️ {message}")
        if shown and not shown.removeprefix(self._prefix).startswith("*"):  # under the answer, not a status
            return f"{shown}\n\n{warning}"
        return self._prefix + warning

    def _with_notes(self, text: str) -> str:
        return "\n\n".join([text, *(f"_{note}_" for note in self._notes)])

    async def _keep_typing(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            while True:
                await self.sink.typing()
                await asyncio.sleep(TYPING_REFRESH)

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None


class DiscordReplier(StreamingReply):
    """The pump over a ``DiscordSink``; ``on_error`` shows an error privately while nothing is posted;
    ``buttons``: the answer's buttons (see the module docstring), once ``answering`` names it."""

    def __init__(
        self,
        sink: Sink,
        *,
        notes: tuple[str, ...] = (),
        prefix: str = "",
        on_error: Callable[[BotError], Awaitable[None]] | None = None,
        edit_interval: float = EDIT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        buttons: AnswerButtons | None = None,
    ) -> None:
        self._discord = DiscordSink(sink, notes=notes, prefix=prefix)
        super().__init__(self._discord, interval=edit_interval, on_error=on_error, clock=clock)
        self._buttons = buttons

    def answering(self, answer_id: int) -> None:
        """The core names the answer (its claim id) before anything of it is shown: Stop goes on the first
        message."""
        super().answering(answer_id)
        if self._buttons is not None:
            self._discord.first_view = self._buttons.streaming(answer_id)

    async def finish(self, text: str) -> None:
        sink = self._discord
        if self._buttons is not None and self.answer_id is not None:
            # the answer's row on its last message, and Stop off the first, with the final text's own
            # post or edit where there is one
            count = len(sink.splitting.split(sink.final(text)))
            if sink.first_view is not None and count > 1:
                sink.closing[0] = None
            sink.closing[count - 1] = self._buttons.finished(self.answer_id)
        try:
            await super().finish(text)
        finally:
            await self._settle()

    async def error(self, error: BotError) -> None:
        sink = self._discord
        if sink.first_view is not None:
            sink.closing = {0: None}
        try:
            await super().error(error)
        finally:
            await self._settle()

    async def _settle(self) -> None:
        """The buttons no post or edit of the complete reply took (its text did not change). A failure here
        loses nothing of the answer: it is logged."""
        sink = self._discord
        wanted, sink.closing = sink.closing, {}
        handles = self.handles
        try:
            for index, view in wanted.items():
                if index < len(handles):
                    await sink.sink.show_buttons(handles[index], view)
        except discord.HTTPException as exc:
            log.warning("could not update the buttons of an answer: HTTP %s (code %s)", exc.status, exc.code)


class DiscordResolver:
    """Crash recovery on Discord (core/turn/recovery.py): the interrupted reply's message says so (and loses
    its Stop button), or, when nothing was posted, a new message in its thread or DM does."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def resolve(self, key: ConversationKey, where: dict[str, str] | None, text: str) -> None:
        shown = f"⚠️ {text}"
        if where is not None:
            channel = self._client.get_partial_messageable(int(where["channel"]))
            await channel.get_partial_message(int(where["message"])).edit(
                content=shown,
                allowed_mentions=NO_MENTIONS,
                view=None,  # its Stop stops nothing now
            )
        elif key.thread_id.isdigit():  # a thread or DM channel (an `/ai ask` without a thread has none)
            channel = self._client.get_partial_messageable(int(key.thread_id))
            await channel.send(shown, allowed_mentions=NO_MENTIONS)
