"""The core's Replier for a Slack thread: the shared pump (bots/streaming.py) over a ``SlackSink``.

A placeholder (or the assistant panel's native status) first, then edits at most about once a second, the
Markdown the model writes shown as Slack mrkdwn, long answers split into several messages, a `:gear:` line
while tools run, files uploaded into the thread.
"""

from __future__ import annotations

import contextlib
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.mrkdwn import MESSAGE_LIMIT, escape, splitting, to_mrkdwn
from bots.streaming import EDIT_INTERVAL, StreamingReply
from core.domain.types import Attachment, ConversationKey

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"

__all__ = ["EDIT_INTERVAL", "PLACEHOLDER", "SlackReplier", "SlackResolver", "SlackSink"]


class SlackSink:
    """One reply in ``thread_ts`` of ``channel``.

    With ``assistant=True`` (the assistant panel) "thinking" is the native thread status instead of a
    placeholder message; it falls back to a placeholder where Slack refuses a status (a plain DM thread).
    ``notice`` (e.g. files that could not be read) is posted once, before the answer.
    """

    transient: tuple[type[Exception], ...] = (SlackApiError,)

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        assistant: bool = False,
        limit: int = MESSAGE_LIMIT,
        notice: str | None = None,
    ) -> None:
        self._client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self._assistant = assistant
        self.splitting = splitting(limit)
        self._notice = notice
        self._native_status = False

    async def begin(self) -> str | None:
        await self.announce()
        if self._assistant:
            try:
                await self._set_status("is thinking…")
                self._native_status = True
                return None
            except SlackApiError as exc:
                log.debug("no assistant status in %s/%s: %s", self.channel, self.thread_ts, exc)
        return PLACEHOLDER

    async def native_status(self, text: str) -> bool:
        if not self._native_status:
            return False
        with contextlib.suppress(SlackApiError):
            await self._set_status(text)
        return True

    async def post(self, text: str) -> object:
        response = await self._client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text, unfurl_links=False, unfurl_media=False
        )
        return str(response["ts"])

    async def edit(self, handle: object, text: str) -> None:
        await self._client.chat_update(channel=self.channel, ts=str(handle), text=text)

    async def delete(self, handle: object) -> None:
        await self._client.chat_delete(channel=self.channel, ts=str(handle))

    def locate(self, handle: object) -> dict[str, str]:
        return {"channel": self.channel, "ts": str(handle)}

    async def upload(self, attachment: Attachment) -> None:
        await self._client.files_upload_v2(
            channel=self.channel,
            thread_ts=self.thread_ts,
            file=attachment.data,
            filename=attachment.name,
            title=attachment.name,
        )

    async def announce(self) -> None:
        notice, self._notice = self._notice, None
        if notice:
            await self._client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=notice)

    async def end(self) -> None:
        """Nothing to stop: Slack shows no typing indicator for a bot."""

    def streaming(self, text: str, status: str | None, posted: bool) -> str:
        shown = to_mrkdwn(text).strip()
        if status:
            shown = f"{shown}\n\n_:gear: {escape(status)}_" if shown else f":gear: {escape(status)}"
        return shown or PLACEHOLDER

    def final(self, text: str) -> str:
        return to_mrkdwn(text).strip() or PLACEHOLDER

    def failure(self, message: str, streamed: str, shown: str) -> str:
        notice = f":warning: {escape(message)}"
        answer = to_mrkdwn(streamed).strip() if streamed else ""
        return f"{answer}\n\n{notice}" if answer else notice

    async def _set_status(self, status: str) -> None:
        await self._client.assistant_threads_setStatus(
            channel_id=self.channel, thread_ts=self.thread_ts, status=status
        )


class SlackReplier(StreamingReply):
    """The pump over a ``SlackSink`` (see there for the options)."""

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
        super().__init__(
            SlackSink(client, channel, thread_ts, assistant=assistant, limit=limit, notice=notice),
            interval=interval,
        )

    @property
    def message_ts(self) -> list[str]:
        """The ``ts`` of every message of this reply, in order."""
        return [str(handle) for handle in self.handles]


class SlackResolver:
    """Crash recovery on Slack (core/turn/recovery.py): the interrupted reply's message says so, or, when
    nothing was posted, a new message in its thread does."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def resolve(self, key: ConversationKey, where: dict[str, str] | None, text: str) -> None:
        shown = f":warning: {escape(text)}"
        if where is not None:
            await self._client.chat_update(channel=where["channel"], ts=where["ts"], text=shown)
        elif key.channel_id:
            thread = key.thread_id if _is_ts(key.thread_id) else None
            await self._client.chat_postMessage(channel=key.channel_id, thread_ts=thread, text=shown)


def _is_ts(value: str) -> bool:
    seconds, dot, fraction = value.partition(".")
    return bool(dot) and seconds.isdigit() and fraction.isdigit()
