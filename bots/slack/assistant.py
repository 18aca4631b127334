"""The Slack assistant panel (slack_bolt's AsyncAssistant): a greeting with suggested prompts when a thread
opens, then every user message through the same conversation pipeline, with the native status and a title."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError

from bots.slack.events import Conversations, is_person, plain_text
from bots.slack.workspaces import Workspace
from core.domain.types import ConversationKey

log = logging.getLogger(__name__)

GREETING = "Hi! I'm Threadwise. Ask me anything; I remember this thread. Type `/ai help` for commands."
SUGGESTED_PROMPTS = (
    {"title": "Summarize a text", "message": "Summarize the following text in three bullet points:"},
    {"title": "Explain some code", "message": "Explain what this code does, step by step:"},
    {"title": "Draft a message", "message": "Help me write a short, friendly message to my team about"},
)
TITLE_CHARS = 80


def build_assistant(conversations: Conversations) -> AsyncAssistant:
    assistant = AsyncAssistant()
    background = conversations.background

    async def greet(say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        await say(GREETING)
        await set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS), title="Try one of these:")

    @assistant.thread_started
    async def thread_started(
        say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts, payload: dict[str, Any]
    ) -> None:
        thread = payload.get("assistant_thread") or {}
        background.spawn(greet(say, set_suggested_prompts), name=f"slack greeting {thread.get('thread_ts')}")

    @assistant.thread_context_changed
    async def context_changed() -> None:
        """The channel the user looks at changed; answers do not depend on it, so nothing is stored (bolt's
        default would rewrite the greeting's metadata with two more API calls)."""

    async def titled_turn(
        body: dict[str, Any], event: dict[str, Any], workspace: Workspace, bot_user_id: str | None
    ) -> None:
        async def title(key: ConversationKey) -> None:  # once the ban and rate-limit guards let the user in
            if await conversations.services.commands.is_conversation(key):
                return
            title = plain_text(str(event.get("text") or ""), bot_user_id)[:TITLE_CHARS]
            if title:
                try:
                    await workspace.client.assistant_threads_setTitle(
                        channel_id=key.channel_id, thread_ts=key.thread_id, title=title
                    )
                except SlackApiError as exc:  # a plain DM thread has no title
                    log.debug("no title for %s: %s", key, exc.response.get("error"))

        await conversations.turn(body, event, workspace, bot_user_id, assistant=True, admitted=title)

    @assistant.user_message
    async def user_message(body: dict[str, Any], payload: dict[str, Any], context: AsyncBoltContext) -> None:
        if is_person(payload, context.bot_user_id):
            workspace = conversations.workspaces.of(context)
            background.spawn(
                titled_turn(body, payload, workspace, context.bot_user_id),
                name=f"slack turn {payload.get('ts')}",
            )

    return assistant
