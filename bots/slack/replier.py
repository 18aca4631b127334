"""The core's Replier for a Slack thread: the shared pump (bots/streaming.py) over a ``SlackSink``.

Where the workspace allows it the answer streams natively (``chat.startStream`` / ``chat.appendStream`` /
``chat.stopStream``, Markdown as the model writes it); else a placeholder first (or the assistant panel's
native status), then edits at most about once a second, the Markdown shown as Slack mrkdwn. Either way long
answers are split into several messages, tools show what they do (a native task line, or a `:gear:` line)
and files are uploaded into the thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.buttons import answer_actions, sections, stop_actions
from bots.slack.mrkdwn import MESSAGE_LIMIT, escape, splitting, to_mrkdwn
from bots.streaming import EDIT_INTERVAL, StreamingReply
from core.domain.errors import BotError
from core.domain.types import Attachment, ConversationKey

log = logging.getLogger(__name__)

PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
# What Slack answers chat.startStream with where a workspace (or a proxy in front of Slack) has no native
# streaming: the workspace gets placeholder and edits from then on.
REFUSALS = frozenset(
    {
        "not_allowed",
        "unknown_method",
        "method_deprecated",
        "method_not_supported_for_channel_type",
        "feature_not_enabled",
        "not_enabled",
        "missing_scope",
        "not_allowed_token_type",
        "team_access_not_granted",
    }
)
NATIVE_MEMORY = 100_000  # workspaces whose refusal is remembered
ENDED = "message_not_in_streaming_state"  # a stream Slack stopped (e.g. it expired)

__all__ = [
    "EDIT_INTERVAL",
    "PLACEHOLDER",
    "NativeStreaming",
    "SlackReplier",
    "SlackResolver",
    "SlackSink",
]


class NativeStreaming:
    """Which workspaces stream natively: tried on a workspace's first reply, and a refusal remembered.

    In memory, per process: it is a capability of the workspace and the app, not state to share (another
    replica, or this one after a restart, finds out again with one refused call)."""

    def __init__(self) -> None:
        self._refused: set[str] = set()

    def allowed(self, team_id: str) -> bool:
        return team_id not in self._refused

    def refuse(self, team_id: str, error: str) -> None:
        if team_id not in self._refused:
            log.info("no native streaming in Slack workspace %s (%s): edits instead", team_id, error)
            if len(self._refused) >= NATIVE_MEMORY:
                self._refused.clear()
            self._refused.add(team_id)


class SlackSink:
    """One reply in ``thread_ts`` of ``channel``.

    With ``assistant=True`` (the assistant panel) "thinking" is the native thread status instead of a
    placeholder message; it falls back to a placeholder where Slack refuses a status (a plain DM thread).
    ``notice`` (e.g. files that could not be read) is posted once, before the answer. With ``native`` the
    reply streams natively where workspace ``team_id`` allows it, to ``recipient`` (user id, team id) in a
    channel; the text it appends is the text the pump shows, so only what moderation passed.
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
        native: NativeStreaming | None = None,
        team_id: str = "",
        recipient: tuple[str, str] | None = None,
    ) -> None:
        self._client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self._assistant = assistant
        self.splitting = splitting(limit)
        self._notice = notice
        self._native_status = False
        self._posted = False
        self._native = native
        self._team = team_id
        self._recipient = recipient
        # None: not decided yet (the first message decides); True: text is Markdown, messages streams
        self._markdown: bool | None = None if native is not None and native.allowed(team_id) else False
        self._open: dict[str, str] = {}  # ts of an open stream -> the Markdown appended to it so far
        self._streams: set[str] = set()  # every message of this reply that was a stream
        self._tasks = 0
        self._task: dict[str, str] | None = None  # the tool step shown in the open stream, in progress
        # The answer's buttons (bots/slack/buttons.py): Stop on the first message while the answer streams
        # (a separate small message when it streams natively: a stream takes blocks only when it stops),
        # 👍 / 👎 / Retry on the last message of a finished answer.
        self.answer_id: int | None = None
        self._phase = "streaming"  # streaming | final | failed
        self._last_index = 0  # the index of the finished answer's last message
        self._order: list[str] = []  # ts of this reply's messages, in order
        self._texts: dict[str, str] = {}  # ts -> the mrkdwn it shows (messages that are no stream)
        self._controls: dict[str, str] = {}  # ts -> the buttons it shows: "stop", "answer" or none
        self._stop_message: str | None = None  # the Stop button's own message beside a native stream

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
        if self._open:
            return await self._task_step(text)
        if not self._native_status or self._posted:
            return False
        with contextlib.suppress(SlackApiError):
            await self._set_status(text)
        return True

    async def post(self, text: str) -> object:
        self._posted = True
        markdown = self._markdown is not False  # how ``text`` was written
        if markdown and self._native is not None and self._native.allowed(self._team):
            ts = await self._start_stream(text)
            if ts is not None:
                return ts
        if self._markdown is None:
            self._markdown = False  # decided: this reply is messages and edits
        if markdown and text != PLACEHOLDER:
            text = to_mrkdwn(text)
        controls = self._desired(len(self._order))
        options: dict[str, Any] = {}
        if controls:
            options["blocks"] = self._blocks(text, controls)
        response = await self._client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=text,
            unfurl_links=False,
            unfurl_media=False,
            **options,
        )
        ts = str(response["ts"])
        self._order.append(ts)
        self._texts[ts] = text
        self._controls[ts] = controls
        return ts

    async def edit(self, handle: object, text: str) -> None:
        ts = str(handle)
        if ts in self._open:
            appended = self._open[ts]
            if text == PLACEHOLDER:
                return  # a new round has no text yet: the stream keeps what it shows
            if text.startswith(appended):
                try:
                    await self._append(ts, text[len(appended) :])
                except SlackApiError as exc:
                    if exc.response.get("error") != ENDED:
                        raise
                    del self._open[ts]  # Slack ended the stream (it expired): edited from now on
                else:
                    self._open[ts] = text
                    return
            else:
                await self._stop(ts)  # text that is no continuation (a new tool round): edited from now on
        shown = to_mrkdwn(text) if self._markdown and text != PLACEHOLDER else text
        await self._update(ts, shown)

    async def _update(self, ts: str, shown: str) -> None:
        """``chat.update`` of a message that is no (open) stream, with the buttons it should show now."""
        index = self._order.index(ts) if ts in self._order else -1
        controls = self._desired(index) if ts not in self._streams else ""
        options: dict[str, Any] = {}
        if controls:
            options["blocks"] = self._blocks(shown, controls)
        elif self._controls.get(ts):
            options["blocks"] = []  # the buttons it showed go: Slack shows the text again
        await self._client.chat_update(channel=self.channel, ts=ts, text=shown, **options)
        self._texts[ts] = shown
        self._controls[ts] = controls

    def _desired(self, index: int) -> str:
        """The buttons message ``index`` of the reply should show now ("" none)."""
        if self.answer_id is None or index < 0:
            return ""
        if self._phase == "streaming":
            return "stop" if index == 0 and self._markdown is not True else ""
        if self._phase == "final":
            return "answer" if index == self._last_index else ""
        return ""

    def _blocks(self, shown: str, controls: str) -> list[dict[str, Any]]:
        assert self.answer_id is not None
        actions = stop_actions(self.answer_id) if controls == "stop" else answer_actions(self.answer_id)
        return [*sections(shown), actions]

    def closing(self, phase: str, pieces: int = 1) -> None:
        """The reply is about to show its final text (``phase`` "final", in ``pieces`` messages) or an
        error ("failed"): the buttons change accordingly."""
        self._phase = phase
        self._last_index = max(pieces - 1, 0)

    async def settle(self) -> None:
        """After the final text or the error: a message whose text did not change (so was not edited)
        still shows the buttons of the streaming phase; it is edited to show the right ones."""
        for index, ts in enumerate(self._order):
            if ts in self._streams:
                continue
            if self._controls.get(ts, "") != self._desired(index):
                try:
                    await self._update(ts, self._texts.get(ts, ""))
                except SlackApiError as exc:
                    error = exc.response.get("error")
                    log.info("could not change the buttons in %s: %s", self.channel, error)
        await self._drop_stop_message()

    async def _drop_stop_message(self) -> None:
        ts, self._stop_message = self._stop_message, None
        if ts is not None:
            try:
                await self._client.chat_delete(channel=self.channel, ts=ts)
            except SlackApiError as exc:
                error = exc.response.get("error")
                log.info("could not delete the Stop button in %s: %s", self.channel, error)

    async def delete(self, handle: object) -> None:
        ts = str(handle)
        if ts in self._open:
            await self._stop(ts)
        await self._client.chat_delete(channel=self.channel, ts=ts)
        if ts in self._order:
            self._order.remove(ts)

    def locate(self, handle: object) -> dict[str, str]:
        where = {"channel": self.channel, "ts": str(handle)}
        if str(handle) in self._streams:
            where["stream"] = "native"  # the resolver stops it if it is still open
        if self._stop_message is not None:
            where["stop"] = self._stop_message  # the Stop button beside it: the resolver deletes it
        return where

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
        """Stop the open stream, if any (Slack shows no typing indicator for a bot); a finished answer's
        last message gets its buttons as the stream stops."""
        for ts in list(self._open):
            last = bool(self._order) and ts == self._order[-1]
            index = len(self._order) - 1 if last else -1
            answer = self.answer_id if self._phase == "final" and index == self._last_index else None
            await self._stop(ts, blocks=[answer_actions(answer)] if answer is not None else None)
            if answer is not None:
                self._controls[ts] = "answer"
        if self._phase != "streaming":
            await self._drop_stop_message()

    def streaming(self, text: str, status: str | None, posted: bool) -> str:
        if self._markdown is not False:
            shown = text.strip()
            if status:
                shown = f"{shown}\n\n_:gear: {status}_" if shown else f":gear: {status}"
            return shown or PLACEHOLDER
        shown = to_mrkdwn(text).strip()
        if status:
            shown = f"{shown}\n\n_:gear: {escape(status)}_" if shown else f":gear: {escape(status)}"
        return shown or PLACEHOLDER

    def final(self, text: str) -> str:
        if self._markdown is not False:
            return text.strip() or PLACEHOLDER
        return to_mrkdwn(text).strip() or PLACEHOLDER

    def failure(self, message: str, streamed: str, shown: str) -> str:
        if self._markdown is not False:
            notice = f":warning: {message}"
            answer = streamed.strip() if streamed else ""
        else:
            notice = f":warning: {escape(message)}"
            answer = to_mrkdwn(streamed).strip() if streamed else ""
        return f"{answer}\n\n{notice}" if answer else notice

    # -- native streaming

    async def _start_stream(self, text: str) -> str | None:
        """A new streamed message (None: Slack refused; the reply continues with messages and edits)."""
        for ts in list(self._open):  # one open stream per reply: the earlier piece is complete
            await self._stop(ts)
        markdown = "" if text == PLACEHOLDER else text
        options: dict[str, Any] = {}
        if self._recipient is not None and not self.channel.startswith("D"):  # a channel, not a DM
            options = {"recipient_user_id": self._recipient[0], "recipient_team_id": self._recipient[1]}
        try:
            response = await self._client.chat_startStream(
                channel=self.channel, thread_ts=self.thread_ts, markdown_text=markdown or None, **options
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in REFUSALS and self._native is not None:
                self._native.refuse(self._team, error)
            else:
                log.warning("chat.startStream failed in %s: %s; posting instead", self.channel, error)
            return None
        ts = str(response["ts"])
        self._markdown = True
        self._open[ts] = markdown
        self._streams.add(ts)
        self._order.append(ts)
        if self.answer_id is not None and self._phase == "streaming" and self._stop_message is None:
            await self._post_stop_message()
        return ts

    async def _post_stop_message(self) -> None:
        """The Stop button beside a native stream (a stream shows blocks only once it stops)."""
        assert self.answer_id is not None
        try:
            response = await self._client.chat_postMessage(
                channel=self.channel,
                thread_ts=self.thread_ts,
                text="Answering…",
                blocks=[stop_actions(self.answer_id)],
            )
        except SlackApiError as exc:
            log.info("no Stop button in %s: %s", self.channel, exc.response.get("error"))
            return
        self._stop_message = str(response["ts"])

    async def _append(self, ts: str, markdown: str) -> None:
        chunks = self._finish_task()
        if not markdown and not chunks:
            return
        if chunks:
            if markdown:
                chunks.append({"type": "markdown_text", "text": markdown})
            await self._client.chat_appendStream(channel=self.channel, ts=ts, chunks=chunks)
        else:
            await self._client.chat_appendStream(channel=self.channel, ts=ts, markdown_text=markdown)

    async def _stop(self, ts: str, blocks: list[dict[str, Any]] | None = None) -> None:
        self._open.pop(ts, None)
        chunks = self._finish_task()
        try:
            await self._client.chat_stopStream(
                channel=self.channel, ts=ts, chunks=chunks or None, blocks=blocks
            )
        except SlackApiError as exc:  # e.g. expired: the message stays as it is, chat.update still works
            log.info("chat.stopStream in %s: %s", self.channel, exc.response.get("error"))

    async def _task_step(self, title: str) -> bool:
        """A tool step shown in the open stream (a task line that completes when text follows)."""
        [ts] = list(self._open)[-1:]
        chunks = self._finish_task()
        self._tasks += 1
        self._task = {"type": "task_update", "id": f"step-{self._tasks}", "title": title}
        chunks.append({**self._task, "status": "in_progress"})
        try:
            await self._client.chat_appendStream(channel=self.channel, ts=ts, chunks=chunks)
        except SlackApiError as exc:
            log.info("no task line in %s: %s", self.channel, exc.response.get("error"))
            if exc.response.get("error") == ENDED:
                self._open.pop(ts, None)
            self._task = None
            return False
        return True

    def _finish_task(self) -> list[dict[str, Any]]:
        task, self._task = self._task, None
        return [{**task, "status": "complete"}] if task is not None else []

    async def _set_status(self, status: str) -> None:
        await self._client.assistant_threads_setStatus(
            channel_id=self.channel, thread_ts=self.thread_ts, status=status
        )


class SlackReplier(StreamingReply):
    """The pump over a ``SlackSink`` (see there for the options), with the answer's buttons. ``on_error``:
    an error before anything was posted is told there instead (e.g. privately to the one who asked)."""

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
        native: NativeStreaming | None = None,
        team_id: str = "",
        recipient: tuple[str, str] | None = None,
        on_error: Callable[[BotError], Awaitable[None]] | None = None,
    ) -> None:
        sink = SlackSink(
            client,
            channel,
            thread_ts,
            assistant=assistant,
            limit=limit,
            notice=notice,
            native=native,
            team_id=team_id,
            recipient=recipient,
        )
        super().__init__(sink, interval=interval, on_error=on_error)
        self._slack = sink

    def answering(self, answer_id: int) -> None:
        super().answering(answer_id)
        self._slack.answer_id = answer_id

    async def finish(self, text: str) -> None:
        self._slack.closing("final", len(self._slack.splitting.split(self._slack.final(text))))
        await super().finish(text)
        await self._slack.settle()

    async def error(self, error: BotError) -> None:
        self._slack.closing("failed")
        await super().error(error)
        await self._slack.settle()

    @property
    def message_ts(self) -> list[str]:
        """The ``ts`` of every message of this reply, in order."""
        return [str(handle) for handle in self.handles]


TokenOf = Callable[[str], Awaitable[str | None]]


class SlackResolver:
    """Crash recovery on Slack (core/turn/recovery.py): the interrupted reply's message says so, or, when
    nothing was posted, a new message in its thread does.

    A native stream the dead replica left open is stopped with the notice appended (its text so far stays);
    one that is already stopped, or any other message, is edited to show the notice. The Stop button's own
    message beside a native stream (``where["stop"]``) is deleted. ``token_of`` (OAuth
    mode) gives the bot token of the conversation's workspace; without it ``client``'s token is used."""

    def __init__(self, client: AsyncWebClient, token_of: TokenOf | None = None) -> None:
        self._client = client
        self._token_of = token_of

    async def resolve(self, key: ConversationKey, where: dict[str, str] | None, text: str) -> None:
        options: dict[str, Any] = {}
        if self._token_of is not None:
            token = await self._token_of(key.workspace_id)
            if token is None:
                log.info("cannot resolve a reply in Slack workspace %s: not installed", key.workspace_id)
                return
            options["token"] = token
        shown = f":warning: {escape(text)}"
        if where is not None:
            channel, ts = where["channel"], where["ts"]
            if where.get("stop"):  # the Stop button's own message beside a native stream goes
                try:
                    await self._client.chat_delete(channel=channel, ts=where["stop"], **options)
                except SlackApiError as exc:  # deleted already (the reply finished, or by hand)
                    log.debug("chat.delete of a Stop button in %s: %s", channel, exc.response.get("error"))
            if where.get("stream"):
                try:
                    await self._client.chat_stopStream(
                        channel=channel, ts=ts, markdown_text=f"\n\n:warning: {text}", **options
                    )
                    return
                except SlackApiError as exc:  # not streaming any more: edited like any message
                    log.debug("chat.stopStream in %s: %s", channel, exc.response.get("error"))
            # blocks=[]: a reply that showed buttons (Stop) shows the notice instead of its blocks
            await self._client.chat_update(channel=channel, ts=ts, text=shown, blocks=[], **options)
        elif key.channel_id:
            thread = key.thread_id if _is_ts(key.thread_id) else None
            await self._client.chat_postMessage(
                channel=key.channel_id, thread_ts=thread, text=shown, **options
            )


def _is_ts(value: str) -> bool:
    seconds, dot, fraction = value.partition(".")
    return bool(dot) and seconds.isdigit() and fraction.isdigit()
