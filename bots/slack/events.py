"""Message events to conversation turns: mentions in channels, DMs, and follow-ups in threads that already
hold a conversation. Everything after the ack runs in the background; the core de-duplicates by event id."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError

from bots.arrival import Arrivals
from bots.downloads import DownloadSlots
from bots.inflight import InFlight
from bots.slack.identity import PLATFORM
from bots.slack.replier import EDIT_INTERVAL, NativeStreaming, SlackReplier
from bots.slack.workspaces import Workspace, Workspaces
from core.domain.types import ChatUser, ConversationKey, IncomingMessage

if TYPE_CHECKING:
    from bots.services import ChatServices

log = logging.getLogger(__name__)

# Message subtypes that are a person saying something; every other subtype (message_changed, message_deleted,
# channel_join, bot_message, …) is noise for the assistant.
USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})

THREAD_CONTEXT_MESSAGES = 30  # earlier messages of a thread read when the bot is first mentioned in it
THREAD_CONTEXT_CHARS = 8_000
THREAD_CONTEXT_PAGES = 5  # conversations.replies pages (of 100) looked through for the newest ones
Admitted = Callable[[ConversationKey], Awaitable[None]]
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def event_id(channel: str, ts: str) -> str:
    """One id per Slack message: retries, replays and the app_mention/message twins all share it."""
    return f"{channel}:{ts}"


def is_person(event: dict[str, Any], bot_user_id: str | None) -> bool:
    if event.get("subtype") not in USER_SUBTYPES or event.get("hidden"):
        return False
    if event.get("bot_id") or event.get("bot_profile"):
        return False
    user = event.get("user")
    return bool(user) and user != bot_user_id


def mentions(text: str, user_id: str | None) -> bool:
    return bool(user_id) and f"<@{user_id}" in text


def plain_text(text: str, bot_user_id: str | None) -> str:
    """The words of a Slack message for the model: the leading bot mention removed, links and channel names
    shown as text, entities decoded. Other people's mentions stay ``<@U…>`` (the model can echo them)."""
    if bot_user_id:
        text = re.sub(rf"^\s*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[\s,:]*", "", text)
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return match.group(0)
        if target.startswith("#"):
            return f"#{label}" if label else target
        if target.startswith("!"):
            return f"@{label or target[1:].split('^')[0]}"
        return f"{label} ({target})" if label and label != target else target

    return html.unescape(_LINK.sub(link, text)).strip()


class Conversations:
    """Bolt listeners for ``app_mention`` and ``message`` events, and the turn they start, talking to each
    event's own workspace (``workspaces``)."""

    def __init__(
        self,
        services: ChatServices,
        workspaces: Workspaces,
        background: InFlight,
        *,
        edit_interval: float = EDIT_INTERVAL,
        native: NativeStreaming | None = None,
    ) -> None:
        self.services = services
        self.workspaces = workspaces
        self.background = background
        self.edit_interval = edit_interval
        self.native = native  # None: replies are a placeholder and edits, never chat.startStream
        # Events of one thread are handed to the core in arrival order, so a follow-up behind a message with
        # a large file is never answered first. Their preparation (user, thread so far, files) runs in that
        # order too: what a thread said before and whether it is a conversation depend on the turns ahead,
        # and one users.info answers every message of a user.
        self._arrivals = Arrivals()
        self._downloads = DownloadSlots()

    def register(self, app: AsyncApp) -> None:
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)

    async def on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if is_person(event, context.bot_user_id):
            self.start_turn(body, event, context)

    async def on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        bot = context.bot_user_id
        if not is_person(event, bot):
            return
        if event.get("channel_type") == "im":
            self.start_turn(body, event, context)
        elif mentions(str(event.get("text") or ""), bot):
            # Mentions are answered from their app_mention twin, except file shares: Slack sends those as a
            # message only (slackapi/bolt-python#925). Should both arrive, the shared event id answers once.
            if event.get("subtype") == "file_share":
                self.start_turn(body, event, context)
        elif event.get("thread_ts"):  # a reply in a thread: answered only where a conversation is going on
            workspace = self.workspaces.of(context)
            self.background.spawn(
                self._follow_up(body, event, workspace, bot), name=f"slack follow-up {event.get('ts')}"
            )

    def key(self, body: dict[str, Any], event: dict[str, Any]) -> ConversationKey:
        team = str(body.get("team_id") or event.get("team") or "")
        return ConversationKey(
            PLATFORM, team, str(event["channel"]), str(event.get("thread_ts") or event["ts"])
        )

    def start_turn(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        workspace = self.workspaces.of(context)
        self.background.spawn(
            self.turn(body, event, workspace, context.bot_user_id),
            name=f"slack turn {event_id(str(event.get('channel')), str(event.get('ts')))}",
        )

    async def _follow_up(
        self, body: dict[str, Any], event: dict[str, Any], workspace: Workspace, bot_user_id: str | None
    ) -> None:
        key = self.key(body, event)
        async with self._arrivals.arrive(key) as place, place:
            if await self.services.commands.is_conversation(key):
                await self._turn(key, body, event, workspace, bot_user_id)

    async def turn(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        workspace: Workspace,
        bot_user_id: str | None,
        *,
        assistant: bool = False,
        admitted: Admitted | None = None,
    ) -> None:
        """``admitted`` runs once the user is let through (e.g. the assistant panel's thread title)."""
        key = self.key(body, event)
        async with self._arrivals.arrive(key) as place, place:
            await self._turn(key, body, event, workspace, bot_user_id, assistant=assistant, admitted=admitted)

    async def _turn(
        self,
        key: ConversationKey,
        body: dict[str, Any],
        event: dict[str, Any],
        workspace: Workspace,
        bot_user_id: str | None,
        *,
        assistant: bool = False,
        admitted: Admitted | None = None,
    ) -> None:
        user_id = str(event["user"])
        asking = IncomingMessage(  # what the event says, before anything is downloaded or asked of Slack
            key=key,
            user=ChatUser(PLATFORM, user_id, user_id, False),
            text=plain_text(str(event.get("text") or ""), bot_user_id),
            event_id=event_id(key.channel_id, str(event["ts"])),
            received_at=datetime.now(UTC),
        )
        asker = (user_id, str(event.get("user_team") or event.get("team") or key.workspace_id))
        if not await self.services.turns.admit(asking):  # banned, too fast, too long: refused as it is
            await self.services.turns.handle(asking, self.replier(key, workspace, asker, assistant=assistant))
            return
        if admitted is not None:
            await admitted(key)
        user = await workspace.directory.user(user_id)
        earlier = await self._earlier_in_thread(key, event, workspace, bot_user_id)
        async with self._downloads.slot(user_id):
            collected = await workspace.fetcher.collect(event.get("files") or [], key)
        message = replace(
            asking, user=user, text=earlier + asking.text, attachments=tuple(collected.attachments)
        )
        replier = self.replier(key, workspace, asker, assistant=assistant, notice=collected.notice())
        outcome = await self.services.turns.handle(message, replier)
        log.debug("slack turn %s: %s", message.event_id, outcome)

    def replier(
        self,
        key: ConversationKey,
        workspace: Workspace,
        asker: tuple[str, str],
        *,
        assistant: bool = False,
        notice: str | None = None,
    ) -> SlackReplier:
        """The reply in the thread of ``key``; ``asker`` (user id, team id) is whom a native stream in a
        channel is for."""
        return SlackReplier(
            workspace.client,
            key.channel_id,
            key.thread_id,
            assistant=assistant,
            interval=self.edit_interval,
            notice=notice,
            native=self.native,
            team_id=key.workspace_id,
            recipient=asker,
        )

    async def _earlier_in_thread(
        self, key: ConversationKey, event: dict[str, Any], workspace: Workspace, bot_user_id: str | None
    ) -> str:
        """When the bot is first called into a thread people were already talking in, what they said there
        (the newest messages, as text ahead of the question); "" for a new thread or a known conversation."""
        thread_ts, ts = event.get("thread_ts"), str(event["ts"])
        if not thread_ts or thread_ts == ts or await self.services.commands.is_conversation(key):
            return ""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            for _ in range(THREAD_CONTEXT_PAGES):
                page = await workspace.client.conversations_replies(
                    channel=key.channel_id, ts=str(thread_ts), limit=100, cursor=cursor
                )
                found.extend(m for m in page.get("messages") or [] if float(m.get("ts", 0)) < float(ts))
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError as exc:  # no history scope in this channel: answer the question alone
            log.info("cannot read thread %s in %s: %s", thread_ts, key.channel_id, exc.response.get("error"))
            return ""
        lines = []
        for message in found[-THREAD_CONTEXT_MESSAGES:]:
            text = plain_text(str(message.get("text") or ""), bot_user_id)
            if not text:
                continue
            author = message.get("user")
            if message.get("bot_id") or author == bot_user_id or not author:
                name = "a bot" if author != bot_user_id else "you (the assistant)"
            else:
                name = (await workspace.directory.user(str(author))).display_name
            lines.append(f"{name}: {text}")
        if not lines:
            return ""
        context = "\n".join(lines)[-THREAD_CONTEXT_CHARS:]
        return f"Earlier in this Slack thread:\n{context}\n\nThe message to you:\n"
