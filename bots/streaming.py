"""The streaming-reply pump every adapter shares: the core's Replier over a small per-platform ``ReplySink``.

The pump owns when and how a reply's messages change: at most one edit per interval (``update`` never waits
for the platform: it records the newest text and a background edit shows it), the reply split at the
platform's limit, earlier messages edited only where their piece changed, surplus messages deleted when a
new tool round restarts a shorter text, and the final or error text shown at once: a pending edit that is not
yet talking to the platform is dropped, one that is completes first. The sink owns what the platform shows:
its calls, its limit, and how streamed text, a status, the final text and an error look there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bots.splitting import Splitting
from core.domain.errors import BotError
from core.domain.ports import ReplyLocation
from core.domain.types import Attachment

log = logging.getLogger(__name__)

EDIT_INTERVAL = (
    1.0  # seconds between edits of one streamed reply (Slack chat.update is Tier 3; Discord ~5/5 s)
)


class ReplySink(Protocol):
    """One platform's side of a streamed reply: where its messages go and what they say."""

    @property
    def splitting(self) -> Splitting:
        """How a long reply is split into messages (the platform's limit and its preferred cuts)."""
        ...

    @property
    def transient(self) -> tuple[type[Exception], ...]:
        """Failures of a streamed edit that are logged, not raised (a later edit tries again)."""
        ...

    async def begin(self) -> str | None:
        """Show that an answer is coming (typing, native status); returns a placeholder to post, if any."""

    async def native_status(self, text: str) -> bool:
        """Show a progress note natively (a thread status before anything is posted, a step in a natively
        streamed message); False: the pump shows it in the reply's text."""

    async def post(self, text: str) -> object:
        """Post a new message of the reply; returns the handle ``edit`` and ``delete`` take."""

    async def edit(self, handle: object, text: str) -> None: ...

    async def delete(self, handle: object) -> None: ...

    def locate(self, handle: object) -> ReplyLocation | None:
        """Where the posted message ``handle`` is, as the platform's resolver finds it again (None: it
        cannot be found again from another process)."""

    async def upload(self, attachment: Attachment) -> None: ...

    async def announce(self) -> None:
        """Post what must come before the answer or the error (once), e.g. a notice about unreadable files."""

    async def end(self) -> None:
        """The reply is complete: stop any progress indicator."""

    def streaming(self, text: str, status: str | None, posted: bool) -> str | None:
        """What the reply shows while ``text`` streams (``status``: a progress note); None: nothing."""

    def final(self, text: str) -> str:
        """What the finished reply shows."""

    def failure(self, message: str, streamed: str, shown: str) -> str:
        """What a failed reply shows, from ``message`` for the user, the text streamed and the text shown."""


class StreamingReply:
    """Implements core.domain.ports.Replier over a ``ReplySink``; see the module docstring.

    ``on_error``, when set, shows an error privately instead while nothing of the reply is visible yet.
    """

    def __init__(
        self,
        sink: ReplySink,
        *,
        interval: float = EDIT_INTERVAL,
        on_error: Callable[[BotError], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self._interval = interval
        self._on_error = on_error
        self._clock = clock
        self._messages: list[tuple[object, str]] = []  # (handle, text shown) per message of the reply
        self._text = ""  # the newest streamed text
        self._status: str | None = None
        self._shown = ""  # the whole text the messages show
        self._dirty = False  # state changed since the last edit
        self._finished = False
        self._pump: asyncio.Task[None] | None = None
        self._talking = False  # the pump's edit is talking to the platform (else it may be dropped)
        self._write = asyncio.Lock()
        self._last_edit = float("-inf")
        self._on_posted: Callable[[ReplyLocation], None] | None = None
        self.answer_id: int | None = None  # the turn's claim id, once it runs (``answering``)

    @property
    def handles(self) -> list[object]:
        """The handle of every message of this reply, in order."""
        return [handle for handle, _ in self._messages]

    # -- Replier

    async def start(self) -> None:
        self._text, self._status = "", None
        placeholder = await self.sink.begin()
        if placeholder is not None and not self._messages:
            await self._show(placeholder)

    async def update(self, text: str) -> None:
        self._text, self._status = text, None
        self._schedule()

    async def status(self, text: str) -> None:
        if await self.sink.native_status(text):
            return
        self._status = text
        self._schedule()

    async def finish(self, text: str) -> None:
        await self._stop_pump()
        self._text, self._status = text, None  # an error after this (e.g. storing failed) shows it too
        await self._close(self.sink.final(text))

    async def attach(self, attachment: Attachment) -> None:
        async with self._write:
            await self.sink.upload(attachment)

    def track(self, on_posted: Callable[[ReplyLocation], None]) -> None:
        self._on_posted = on_posted

    def answering(self, answer_id: int) -> None:
        """The answer's id (its claim id), for its buttons; a platform's replier that shows buttons
        overrides this (and ``finish``/``error`` to change them), the pump itself shows none."""
        self.answer_id = answer_id

    async def error(self, error: BotError) -> None:
        if self._on_error is not None and not self._messages:
            await self._stop_pump()
            if not self._messages:  # an edit that was talking to the platform may have shown something
                await self.sink.end()
                await self._on_error(error)
                return
        await self._stop_pump()
        await self.sink.announce()
        await self._close(self.sink.failure(error.user_message, self._text, self._shown))

    # -- internals

    def _schedule(self) -> None:
        if self._finished:
            return
        self._dirty = True
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump())

    async def _run_pump(self) -> None:
        while self._dirty and not self._finished:
            wait = self._last_edit + self._interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._talking = True
            try:
                await self._edit_now()
            except self.sink.transient as exc:  # a failed intermediate edit is not worth failing the turn
                log.warning("could not show a streamed update: %s", exc)
            finally:
                self._talking = False

    async def _edit_now(self) -> None:
        self._dirty = False
        view = self.sink.streaming(self._text, self._status, bool(self._messages))
        if view is not None and view != self._shown:
            await self._show(view)

    async def _stop_pump(self) -> None:
        """No more streamed edits: one not yet talking to the platform is dropped, one talking completes."""
        self._finished = True
        pump, self._pump = self._pump, None
        if pump is None or pump.done():
            return
        if not self._talking:
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _close(self, text: str) -> None:
        await self._stop_pump()
        try:
            await self._show(text)
        finally:
            await self.sink.end()

    async def _show(self, text: str) -> None:
        async with self._write:
            self._last_edit = self._clock()
            pieces = self.sink.splitting.split(text)
            for index, piece in enumerate(pieces):
                if index >= len(self._messages):
                    self._messages.append((await self.sink.post(piece), piece))
                    if index == 0:
                        self._posted(self._messages[0][0])
                elif self._messages[index][1] != piece:
                    await self.sink.edit(self._messages[index][0], piece)
                    self._messages[index] = (self._messages[index][0], piece)
            for handle, _ in self._messages[len(pieces) :]:  # a new tool round restarted a shorter text
                await self.sink.delete(handle)
            del self._messages[len(pieces) :]
            self._shown = text

    def _posted(self, handle: object) -> None:
        """The reply's first message exists: tell the turn where it is (once)."""
        on_posted, self._on_posted = self._on_posted, None
        where = self.sink.locate(handle) if on_posted is not None else None
        if on_posted is not None and where is not None:
            on_posted(where)
