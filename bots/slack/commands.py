"""``/ai`` and ``/ai-admin``: acked at once, answered in the background. Answers that concern only the caller
are ephemeral; ``ask``/``chat``/``image`` post the question to the channel and answer in its thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.events import Conversations, event_id, plain_text
from bots.slack.identity import PLATFORM
from bots.slack.mentions import neutral_args
from bots.slack.mrkdwn import escape
from bots.slack.payloads import DELIVERY
from bots.slack.render import render
from bots.slack.replier import SlackReplier
from bots.slack.workspaces import Workspace
from core.commands.parsing import parse_ai_text
from core.commands.results import Reply
from core.domain.errors import BotError
from core.domain.types import Attachment, ChatUser, ConversationKey, IncomingMessage

if TYPE_CHECKING:
    from core.commands.dispatch import Commands

log = logging.getLogger(__name__)

AI_USAGE = {
    "ask": "Usage: `/ai ask <question>` (or just `/ai <question>`)",
    "chat": "Usage: `/ai chat <message>`: starts a conversation in a thread",
    "image": "Usage: `/ai image <description>`",
}
ECHO_CHARS = 1_000
ERROR_CHARS = 2_000  # an error as shown, escaped: at most 8,000 of the 40,000 characters of a Slack message
CANNOT_POST = (
    "I can't post in this conversation. Invite me with `/invite @Threadwise`, mention me in a channel "
    "I'm in, or send me a direct message."
)


def echo(prompt: str, limit: int = ECHO_CHARS) -> str:
    """A prompt as repeated in the channel: cut to ``limit`` characters (escaped, 10,000 ``<`` would pass
    Slack's 40,000-character cap on a message, and the question be lost after the answer was paid for)."""
    return prompt if len(prompt) <= limit else prompt[:limit] + "…"


def error_text(error: BotError) -> str:
    """An error for the caller; a message that quotes a long input is cut so it still fits one message."""
    return f":warning: {escape(echo(error.user_message, ERROR_CHARS))}"


def delivery_id(command: dict[str, Any], context: AsyncBoltContext) -> str | None:
    """What makes one slash command invocation unique. Slack mints a new ``trigger_id`` for every invocation
    and signs it with the rest of the body, so a replay (byte-identical, or its signature fails) carries the
    same one while two invocations never do. Without one, the request signature stands in: it is unique per
    timestamp and body, and a replay must repeat both. None (nothing to tell a replay by): no de-duplication.
    """
    trigger = command.get("trigger_id")
    unique = trigger if isinstance(trigger, str) and trigger else str(context.get(DELIVERY) or "")
    return f"slack-command:{command.get('team_id') or ''}:{unique}" if unique else None


class SlashCommands:
    def __init__(self, conversations: Conversations) -> None:
        self._conversations = conversations
        self._background = conversations.background

    @property
    def _commands(self) -> Commands:
        return self._conversations.services.commands

    def register(self, app: AsyncApp) -> None:
        app.command("/ai")(self.on_ai)
        app.command("/ai-admin")(self.on_admin)

    async def on_ai(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        self._background.spawn(self._guarded(self._ai, command, context, respond), name="slack /ai")

    async def on_admin(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        work = self._guarded(self._admin, command, context, respond)
        self._background.spawn(work, name="slack /ai-admin")

    async def _guarded(
        self,
        run: Callable[[dict[str, Any], Workspace, AsyncRespond], Coroutine[Any, Any, None]],
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> None:
        try:
            user_id, delivery = str(command["user_id"]), delivery_id(command, context)
            workspace = self._conversations.workspaces.of(context)
            if not await self._commands.admit(PLATFORM, user_id, delivery):
                log.info("replayed slash command %s dropped", command.get("command"))
                return
            await run(command, workspace, respond)
        except BotError as exc:
            await respond(text=error_text(exc), response_type="ephemeral")
        except Exception:
            log.exception("slash command failed")
            await respond(text=f":warning: {escape(BotError.default_message)}", response_type="ephemeral")

    @staticmethod
    def _key(command: dict[str, Any], thread: str = "") -> ConversationKey:
        return ConversationKey(
            PLATFORM, str(command.get("team_id") or ""), str(command["channel_id"]), thread
        )

    @staticmethod
    async def _user(command: dict[str, Any], workspace: Workspace) -> ChatUser:
        return await workspace.directory.user(str(command["user_id"]), name_hint=command.get("user_name"))

    async def _thread_key(self, command: dict[str, Any]) -> ConversationKey:
        """Slack sends no thread with a slash command: reset/model/usage apply to the thread the caller last
        talked in in this channel (or the channel itself when there is none), as the database knows it, so
        whichever replica gets the command."""
        team, channel = str(command.get("team_id") or ""), str(command["channel_id"])
        turns = self._conversations.services.turns
        thread = await turns.last_thread(PLATFORM, team, channel, str(command["user_id"]))
        return self._key(command, thread)

    async def _ai(self, command: dict[str, Any], workspace: Workspace, respond: AsyncRespond) -> None:
        sub, rest = parse_ai_text(plain_text(str(command.get("text") or ""), None))
        user = await self._user(command, workspace)
        key = await self._thread_key(command)
        commands = self._commands
        send = self._sender(command, workspace, respond)
        if sub in ("ask", "chat", "image") and not rest:
            await respond(text=AI_USAGE[sub], response_type="ephemeral")
        elif sub in ("ask", "chat"):
            await self._ask(command, workspace, user, rest, respond)
        elif sub == "image":
            await self._image(command, workspace, user, rest, respond)
        elif sub == "reset":
            await send(await commands.reset(user, key), key.thread_id)
        elif sub == "usage":
            await send(await commands.usage(user, key), key.thread_id)
        elif sub == "model":
            await send(await commands.set_model(user, key, rest), key.thread_id)
        elif sub == "forget":
            await send(await commands.forget(user, key, rest), "")
        elif sub == "export":
            await send(await commands.export(user, key), "")
        else:
            await send(await commands.help(user), "")

    async def _admin(self, command: dict[str, Any], workspace: Workspace, respond: AsyncRespond) -> None:
        name, _, args = str(command.get("text") or "").strip().partition(" ")
        user = await self._user(command, workspace)
        reply = await self._commands.admin(user, self._key(command), name, neutral_args(args.strip()))
        await self._send(reply, command, workspace, respond)

    def _sender(
        self, command: dict[str, Any], workspace: Workspace, respond: AsyncRespond
    ) -> Callable[[Reply, str], Coroutine[Any, Any, None]]:
        async def send(reply: Reply, thread_ts: str) -> None:
            await self._send(reply, command, workspace, respond, thread_ts)

        return send

    @staticmethod
    async def _post_question(
        command: dict[str, Any], workspace: Workspace, text: str, respond: AsyncRespond
    ) -> str | None:
        try:
            posted = await workspace.client.chat_postMessage(
                channel=str(command["channel_id"]), text=text, unfurl_links=False, unfurl_media=False
            )
        except SlackApiError as exc:
            log.info(
                "cannot post the /ai question in %s: %s", command["channel_id"], exc.response.get("error")
            )
            await respond(text=CANNOT_POST, response_type="ephemeral")
            return None
        return str(posted["ts"])

    async def _ask(
        self,
        command: dict[str, Any],
        workspace: Workspace,
        user: ChatUser,
        prompt: str,
        respond: AsyncRespond,
    ) -> None:
        # The question is shown only once the core has let it through (not banned, not rate limited, not
        # blocked) and only as redacted: until then the thread's parent says nothing of it.
        waiting = f"<@{user.user_id}> asked a question :hourglass_flowing_sand:"
        ts = await self._post_question(command, workspace, waiting, respond)
        if ts is None:
            return
        channel = str(command["channel_id"])
        message = IncomingMessage(
            key=self._key(command, ts),
            user=user,
            text=prompt,
            event_id=event_id(channel, ts),
            received_at=datetime.now(UTC),
        )
        asker = (user.user_id, message.key.workspace_id)
        replier = self._conversations.replier(message.key, workspace, asker)
        shown = f"<@{user.user_id}> asked: {escape(echo(self._commands.display(prompt)))}"
        failed = f"<@{user.user_id}> asked a question."
        parent = QuestionParent(workspace.client, channel, ts, shown, failed, replier)
        await self._conversations.services.turns.handle(message, parent)

    async def _image(
        self,
        command: dict[str, Any],
        workspace: Workspace,
        user: ChatUser,
        prompt: str,
        respond: AsyncRespond,
    ) -> None:
        channel, client = str(command["channel_id"]), workspace.client
        question = f"<@{user.user_id}> asked for an image: {escape(echo(self._commands.display(prompt)))}"
        waiting = f"<@{user.user_id}> asked for an image :hourglass_flowing_sand:"
        ts = await self._post_question(command, workspace, waiting, respond)
        if ts is None:
            return
        try:
            reply = await self._commands.image(user, self._key(command, ts), prompt)
        except Exception:
            await client.chat_delete(channel=channel, ts=ts)
            raise
        await client.chat_update(channel=channel, ts=ts, text=question)
        text = render(reply)
        await _upload(client, reply.attachments, channel, ts, comment=text or None)

    @staticmethod
    async def _send(
        reply: Reply,
        command: dict[str, Any],
        workspace: Workspace,
        respond: AsyncRespond,
        thread_ts: str = "",
    ) -> None:
        """Text ephemeral unless ``reply.public`` (then in the thread it concerns); files into the channel
        when public, else into the caller's DM with the bot (Slack has no ephemeral files)."""
        text = render(reply)
        channel, client = str(command["channel_id"]), workspace.client
        if reply.public:
            await client.chat_postMessage(
                channel=channel, thread_ts=thread_ts or None, text=text, unfurl_links=False
            )
            await _upload(client, reply.attachments, channel, thread_ts or None)
            return
        if reply.attachments:
            opened = await client.conversations_open(users=str(command["user_id"]))
            dm = str(opened["channel"]["id"])
            await _upload(client, reply.attachments, dm, None, comment=text)
            names = ", ".join(f"`{a.name}`" for a in reply.attachments)
            text = f"{text}\n\n_Sent {names} to you in a direct message._"
        await respond(text=text, response_type="ephemeral")


async def _upload(
    client: AsyncWebClient,
    attachments: tuple[Attachment, ...],
    channel: str,
    thread_ts: str | None,
    comment: str | None = None,
) -> None:
    if not attachments:
        return
    await client.files_upload_v2(
        file_uploads=[{"file": a.data, "filename": a.name, "title": a.name} for a in attachments],
        channel=channel,
        thread_ts=thread_ts,
        initial_comment=comment,
    )


class QuestionParent:
    """The Replier of a `/ai ask|chat` turn: the channel message the thread hangs from shows the (redacted)
    question once the turn starts, i.e. once the core's guards let it through, and a neutral line if the turn
    fails before that. Everything else goes to the thread's SlackReplier."""

    def __init__(
        self, client: AsyncWebClient, channel: str, ts: str, shown: str, failed: str, replier: SlackReplier
    ) -> None:
        self._client = client
        self._channel = channel
        self._ts = ts
        self._shown = shown
        self._failed = failed
        self._replier = replier
        self._revealed = False

    async def start(self) -> None:
        await self._set(self._shown)
        self._revealed = True
        await self._replier.start()

    async def update(self, text: str) -> None:
        await self._replier.update(text)

    async def status(self, text: str) -> None:
        await self._replier.status(text)

    async def finish(self, text: str) -> None:
        await self._replier.finish(text)

    async def attach(self, attachment: Attachment) -> None:
        await self._replier.attach(attachment)

    async def error(self, error: BotError) -> None:
        if not self._revealed:
            await self._set(self._failed)
        await self._replier.error(error)

    def track(self, on_posted: Callable[[dict[str, str]], None]) -> None:
        self._replier.track(on_posted)

    def answering(self, answer_id: int) -> None:
        self._replier.answering(answer_id)

    async def _set(self, text: str) -> None:
        try:
            await self._client.chat_update(channel=self._channel, ts=self._ts, text=text)
        except SlackApiError as exc:
            log.warning("could not update the question in %s: %s", self._channel, exc.response.get("error"))
