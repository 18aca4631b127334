"""The core's Replier for a Slack thread: a placeholder (or assistant status), then edits at most about once a
second, long answers split into several messages, files uploaded into the thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.mrkdwn import MESSAGE_LIMIT, escape, split_message, to_mrkdwn
from core.domain.errors import BotError
from core.domain.types import Attachment

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
EDIT_INTERVAL = 1.0  # seconds between edits of a streaming reply (chat.update is a Tier 3 method)


class SlackReplier:
    """Shows one reply in ``thread_ts`` of ``channel``.

    Streaming never waits for Slack: ``update`` only records the newest text and a background edit runs when
    ``interval`` has passed since the last one. The Markdown the model writes is shown as Slack mrkdwn.
    With ``assistant=True`` (the assistant panel) "thinking" is the native thread status instead of a
    placeholder message; it falls back to a placeholder where Slack refuses a status (a plain DM thread).
    """

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        assistant: bool = False,
        interval: float = EDIT_INTERVAL,
        limit: int = MESSAGE_LIMIT,
        notice: str | None = None,
    ) -> None:
        self._client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self._assistant = assistant
        self._interval = interval
        self._limit = limit
        self._notice = notice  # e.g. files that could not be read: shown once, before the answer
        self._native_status = False
        self._posted: list[tuple[str, str]] = []  # (ts, text shown) per message of the reply, in order
        self._latest = ""
        self._status: str | None = None
        self._pump: asyncio.Task[None] | None = None
        self._editing = False  # the pending edit is talking to Slack (else it may be dropped)
        self._write = asyncio.Lock()
        self._last_edit = 0.0

    @property
    def message_ts(self) -> list[str]:
        """The ``ts`` of every message of this reply, in order."""
        return [ts for ts, _ in self._posted]

    async def start(self) -> None:
        self._latest, self._status = "", None
        await self._post_notice()
        if self._assistant:
            try:
                await self._set_status("is thinking…")
                self._native_status = True
                return
            except SlackApiError as exc:
                log.debug("no assistant status in %s/%s: %s", self.channel, self.thread_ts, exc)
        if not self._posted:
            await self._show([PLACEHOLDER])

    async def update(self, text: str) -> None:
        self._latest, self._status = text, None
        self._schedule()

    async def status(self, text: str) -> None:
        if self._native_status and not self._posted:
            with contextlib.suppress(SlackApiError):
                await self._set_status(text)
            return
        self._status = text
        self._schedule()

    async def finish(self, text: str) -> None:
        await self._stop_pump()
        self._latest, self._status = text, None
        await self._show(self._render(text))

    async def error(self, error: BotError) -> None:
        await self._stop_pump()
        await self._post_notice()
        notice = f":warning: {escape(error.user_message)}"
        shown = to_mrkdwn(self._latest).strip() if self._latest else ""
        await self._show(split_message(f"{shown}\n\n{notice}" if shown else notice, self._limit))

    async def attach(self, attachment: Attachment) -> None:
        await self._client.files_upload_v2(
            channel=self.channel,
            thread_ts=self.thread_ts,
            file=attachment.data,
            filename=attachment.name,
            title=attachment.name,
        )

    # ------------------------------------------------------------------ internals

    def _render(self, markdown: str, status: str | None = None) -> list[str]:
        text = to_mrkdwn(markdown).strip()
        if status:
            text = f"{text}\n\n_:gear: {escape(status)}_" if text else f":gear: {escape(status)}"
        return split_message(text or PLACEHOLDER, self._limit)

    def _schedule(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._edit_soon())

    async def _edit_soon(self) -> None:
        delay = self._last_edit + self._interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._editing = True
        try:
            await self._show(self._render(self._latest, self._status))
        except SlackApiError as exc:  # a failed intermediate edit is not worth failing the turn for
            log.warning("could not update the reply in %s/%s: %s", self.channel, self.thread_ts, exc)
        finally:
            self._editing = False

    async def _stop_pump(self) -> None:
        """Drops a pending edit that has not reached Slack yet (waiting for its turn or not even started);
        lets one that is talking to Slack complete."""
        pump, self._pump = self._pump, None
        if pump is None or pump.done():
            return
        if not self._editing:
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _show(self, pieces: list[str]) -> None:
        async with self._write:
            for index, piece in enumerate(pieces):
                if index < len(self._posted):
                    ts, shown = self._posted[index]
                    if shown != piece:
                        await self._client.chat_update(channel=self.channel, ts=ts, text=piece)
                        self._posted[index] = (ts, piece)
                else:
                    response = await self._client.chat_postMessage(
                        channel=self.channel,
                        thread_ts=self.thread_ts,
                        text=piece,
                        unfurl_links=False,
                        unfurl_media=False,
                    )
                    self._posted.append((str(response["ts"]), piece))
            while len(self._posted) > len(pieces):  # a new tool round restarted a shorter text
                ts, _ = self._posted.pop()
                await self._client.chat_delete(channel=self.channel, ts=ts)
            self._last_edit = time.monotonic()

    async def _post_notice(self) -> None:
        notice, self._notice = self._notice, None
        if notice:
            await self._client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=notice)

    async def _set_status(self, status: str) -> None:
        await self._client.assistant_threads_setStatus(
            channel_id=self.channel, thread_ts=self.thread_ts, status=status
        )
