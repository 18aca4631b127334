"""The buttons under an answer on Slack (core/answers/buttons.py does the work): 👍 / 👎 recorded, Stop
passed to whichever replica runs the answer, Retry answered as a new turn in the same thread with the old
answer marked "Retried". Refusals and confirmations are ephemeral, for the clicker only."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bots.slack.actions import Click
from bots.slack.buttons import marked, sections
from bots.slack.mrkdwn import escape
from core.domain.errors import BotError
from core.domain.types import IncomingMessage
from core.turn.service import TurnOutcome

if TYPE_CHECKING:
    from bots.services import ChatServices
    from bots.slack.events import Conversations

log = logging.getLogger(__name__)

VOTED = {True: "Thanks for the :thumbsup:, noted.", False: "Thanks for the :thumbsdown:, noted."}
ALREADY_FINISHED = "That answer has already finished."
STOPPING = "Stopping the answer…"
UNAVAILABLE = "These buttons are not available on this server."


class AnswerClicks:
    def __init__(self, services: ChatServices, conversations: Conversations) -> None:
        self._services = services
        self._conversations = conversations

    async def __call__(self, click: Click) -> None:
        buttons = self._services.buttons
        if buttons is None:
            await self._tell(click, UNAVAILABLE)
            return
        if not click.value.isdigit() or click.verb not in ("up", "down", "stop", "retry"):
            log.info("Slack answer button %s with a malformed value ignored", click.verb)
            return
        answer_id = int(click.value)
        user = await click.workspace.directory.user(click.user_id, name_hint=click.user_name)
        try:
            if click.verb in ("up", "down"):
                vote = await buttons.vote(answer_id, user, up=click.verb == "up")
                await self._tell(click, VOTED[vote.up])
            elif click.verb == "stop":
                stopping = await buttons.stop(answer_id, user)
                if not stopping.running:
                    await self._tell(click, ALREADY_FINISHED)
            else:
                outcomes: list[TurnOutcome] = []

                async def rerun(message: IncomingMessage) -> TurnOutcome:
                    outcomes.append(await self._rerun(click, message))
                    return outcomes[-1]

                await buttons.retry(answer_id, user, click=click.action_ts, run=rerun)
                if outcomes == [TurnOutcome.FAILED]:
                    # the core has put the old answer back in the history: its buttons come back now
                    await self._show_again(click)
        except BotError as error:
            await self._tell(click, f":warning: {escape(error.user_message)}")
        except Exception:  # e.g. Slack unreachable mid-retry: the core put the old answer back
            log.exception("Slack answer button %s failed", click.verb)
            await self._tell(click, f":warning: {escape(BotError.default_message)}")

    async def _rerun(self, click: Click, message: IncomingMessage) -> TurnOutcome:
        """The retry as a new turn in the thread; the old answer is marked first."""
        await self._mark_retried(click)
        asker = (message.user.user_id, click.team_id or message.key.workspace_id)
        replier = self._conversations.replier(message.key, click.workspace, asker)
        return await self._services.turns.handle(message, replier)

    async def _mark_retried(self, click: Click) -> None:
        """The old answer's buttons give way to a "Retried by" line."""
        if click.channel_id is None or click.message_ts is None:
            return
        blocks = list(click.message.get("blocks") or [])
        note = f"_Retried by <@{click.user_id}>._"
        shown = marked(blocks, note)
        if len(shown) == 1:  # nothing but the note: the message's text goes back in as sections
            shown = [*sections(str(click.message.get("text") or "")), *shown]
        try:
            await click.workspace.client.chat_update(
                channel=click.channel_id,
                ts=click.message_ts,
                text=str(click.message.get("text") or ""),
                blocks=shown,
            )
        except SlackApiError as exc:
            log.info("could not mark an answer retried: %s", exc.response.get("error"))

    async def _show_again(self, click: Click) -> None:
        """A retry that failed: the old answer is shown as it was, with its buttons."""
        if click.channel_id is None or click.message_ts is None or not click.message.get("blocks"):
            return
        try:
            await click.workspace.client.chat_update(
                channel=click.channel_id,
                ts=click.message_ts,
                text=str(click.message.get("text") or ""),
                blocks=list(click.message["blocks"]),
            )
        except SlackApiError as exc:
            log.info("could not show a retried answer again: %s", exc.response.get("error"))

    async def _tell(self, click: Click, text: str) -> None:
        try:
            await click.respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # the response_url expired (30 min) or Slack is unreachable
            log.info("could not answer a Slack click: %s", exc)
