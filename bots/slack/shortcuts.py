"""The message shortcut "Ask Threadwise about this" (callback id ``ask_threadwise``): acked at once, then a
turn in that message's thread (opening one on a message that had none) whose text is the message and the
thread's earlier messages (core/commands/ask_about.py), answered like a mention.

It goes through the normal turn: the event id comes from the action (a replayed request is answered once),
the ban and rate-limit guards run before Slack is asked anything for the user, and the text is redacted,
moderated and budgeted like anything typed. The shortcut carries no question: the model explains the
message. A refusal before anything is posted, or a conversation the bot cannot read, is told to the user
alone (ephemeral, through the shortcut's response_url).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError

from bots.slack.events import THREAD_CONTEXT_PAGES, plain_text
from bots.slack.identity import PLATFORM
from bots.slack.mrkdwn import escape
from bots.slack.replier import SlackReplier
from bots.slack.workspaces import Workspace
from core.commands.ask_about import CONTEXT_MESSAGES, Quoted, ask_about_text
from core.domain.errors import BotError
from core.domain.types import ChatUser, ConversationKey, IncomingMessage

if TYPE_CHECKING:
    from bots.slack.events import Conversations

log = logging.getLogger(__name__)

CALLBACK_ID = "ask_threadwise"
UNREADABLE = frozenset({"not_in_channel", "channel_not_found", "missing_scope", "access_denied"})
CANNOT_READ = (
    ":warning: I can't read that conversation. Invite me with `/invite @Threadwise` (or use the shortcut "
    "in a channel I'm in), then try again."
)


def shortcut_event_id(body: dict[str, Any]) -> str:
    """One id per use of the shortcut: the same signed request replayed carries the same ``action_ts``."""
    return f"shortcut:{body['channel']['id']}:{body['message']['ts']}:{body['action_ts']}"


class AskShortcut:
    def __init__(self, conversations: Conversations) -> None:
        self._conversations = conversations

    def register(self, app: AsyncApp) -> None:
        app.message_shortcut(CALLBACK_ID)(self.on_shortcut)

    async def on_shortcut(
        self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
    ) -> None:
        await ack()
        workspace = self._conversations.workspaces.of(context)
        self._conversations.background.spawn(
            self._guarded(body, workspace, context.bot_user_id, respond),
            name=f"slack shortcut {body.get('action_ts')}",
        )

    async def _guarded(
        self, body: dict[str, Any], workspace: Workspace, bot: str | None, respond: AsyncRespond
    ) -> None:
        try:
            await self._ask(body, workspace, bot, respond)
        except Exception:
            log.exception("message shortcut failed")
            await respond(
                text=f":warning: {escape(BotError.default_message)}",
                response_type="ephemeral",
                replace_original=False,
            )

    async def _ask(
        self, body: dict[str, Any], workspace: Workspace, bot: str | None, respond: AsyncRespond
    ) -> None:
        services = self._conversations.services
        picked: dict[str, Any] = body["message"]
        team, channel = str(body["team"]["id"]), str(body["channel"]["id"])
        user_id = str(body["user"]["id"])
        ts = str(picked["ts"])
        key = ConversationKey(PLATFORM, team, channel, str(picked.get("thread_ts") or ts))
        text = plain_text(str(picked.get("text") or ""), bot)
        asking = IncomingMessage(  # what the shortcut says, before Slack is asked anything for the user
            key=key,
            user=ChatUser(PLATFORM, user_id, user_id, False),
            text=ask_about_text(Quoted("someone", text), (), where="Slack thread"),
            event_id=shortcut_event_id(body),
            received_at=datetime.now(UTC),
        )

        async def privately(error: BotError) -> None:
            await respond(
                text=f":warning: {escape(error.user_message)}",
                response_type="ephemeral",
                replace_original=False,
            )

        asker = (user_id, str(body["user"].get("team_id") or team))
        if not await services.turns.admit(asking):  # banned, too fast: told privately, nothing posted
            await services.turns.handle(asking, self._replier(key, workspace, asker, privately))
            return
        try:
            earlier = await self._earlier(key, picked, workspace, bot)
        except SlackApiError as exc:
            if exc.response.get("error") in UNREADABLE:
                await respond(text=CANNOT_READ, response_type="ephemeral", replace_original=False)
                return
            log.info("cannot read thread %s in %s: %s", key.thread_id, channel, exc.response.get("error"))
            earlier = []
        author = await self._author(picked, workspace, bot)
        user = await workspace.directory.user(user_id)
        message = replace(
            asking, user=user, text=ask_about_text(Quoted(author, text), earlier, where="Slack thread")
        )
        outcome = await services.turns.handle(message, self._replier(key, workspace, asker, privately))
        log.debug("slack shortcut %s: %s", message.event_id, outcome)

    def _replier(
        self, key: ConversationKey, workspace: Workspace, asker: tuple[str, str], privately: Any
    ) -> SlackReplier:
        """The answer's replier, with its buttons (Stop, 👍 / 👎, Retry) like a mention's."""
        conversations = self._conversations
        return SlackReplier(
            workspace.client,
            key.channel_id,
            key.thread_id,
            interval=conversations.edit_interval,
            native=conversations.native,
            team_id=key.workspace_id,
            recipient=asker,
            on_error=privately,
        )

    async def _earlier(
        self, key: ConversationKey, picked: dict[str, Any], workspace: Workspace, bot: str | None
    ) -> list[Quoted]:
        """The thread's messages before the picked one (the newest CONTEXT_MESSAGES); none for a message
        that is no reply. Raises SlackApiError when the conversation cannot be read."""
        ts = float(picked["ts"])
        if key.thread_id == picked["ts"]:  # a thread's parent, or a message with no thread
            await workspace.client.conversations_replies(channel=key.channel_id, ts=key.thread_id, limit=1)
            return []  # (asked anyway: it tells whether the bot can read, and so answer in, that channel)
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(THREAD_CONTEXT_PAGES):
            page = await workspace.client.conversations_replies(
                channel=key.channel_id, ts=key.thread_id, limit=100, cursor=cursor
            )
            found.extend(m for m in page.get("messages") or [] if float(m.get("ts", 0)) < ts)
            found = found[-CONTEXT_MESSAGES:]
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return [
            Quoted(
                await self._author(message, workspace, bot), plain_text(str(message.get("text") or ""), bot)
            )
            for message in found
        ]

    @staticmethod
    async def _author(message: dict[str, Any], workspace: Workspace, bot: str | None) -> str:
        author = message.get("user")
        if author and author == bot:
            return "you (the assistant)"
        if message.get("bot_id") or not author:
            return "a bot"
        return (await workspace.directory.user(str(author))).display_name
