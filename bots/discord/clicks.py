"""What a click on an answer's button does on Discord (the ``ButtonActions`` of bots/discord/buttons.py), over
the core's ``AnswerButtons`` (core/answers/buttons.py).

Every click is acknowledged first, within Discord's 3 seconds, as a deferred update (the message stays as it
is), then admitted like a command (a redelivered click is dropped, a user clicking too fast is told to
wait). Whatever the core refuses (someone other than the asker or an admin, an answer that is gone, Retry on
an answer that is no longer the last) is said only to the clicker, and nothing changes.

- 👍 / 👎: the vote is stored; the clicker is thanked privately.
- Stop: the running answer stops on whichever replica runs it, and its own reply shows the note; if it had
  already finished, the clicker is told.
- Retry: the old answer's buttons go and it is marked retried (it is out of the history now), and the
  question is answered again in the same conversation, as a new reply with its own buttons; when that
  fails, the old answer is back in the history, and back as it was, buttons included.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord

from bots.discord.buttons import AnswerButtons, answer_buttons
from bots.discord.chunks import MESSAGE_LIMIT
from bots.discord.identity import PLATFORM, chat_user, interaction_is_admin
from bots.discord.replier import NO_MENTIONS, ChannelSink, DiscordReplier
from bots.inflight import InFlight
from core.domain.errors import BotError
from core.domain.types import ChatUser, IncomingMessage
from core.turn.service import TurnOutcome

if TYPE_CHECKING:
    from bots.services import ChatServices
    from core.answers.buttons import AnswerButtons as CoreButtons

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]

UNAVAILABLE = "These buttons are not available here."
ALREADY_DONE = "That answer had already finished; there was nothing to stop."
RETRIED_NOTE = "\n\n_Retried: answered again below._"


class Clicks:
    """The clicks of one client; ``buttons`` are its button classes (register ``buttons.items``)."""

    def __init__(self, services: ChatServices, *, inflight: InFlight, edit_interval: float) -> None:
        self._services = services
        self._inflight = inflight
        self._edit_interval = edit_interval
        self.buttons: AnswerButtons = answer_buttons(self)

    async def vote(self, interaction: Interaction, answer: int, *, up: bool) -> None:
        with self._inflight.track():
            user = await self._accept(interaction)
            if user is None:
                return
            try:
                vote = await self._core().vote(answer, user, up=up)
            except BotError as error:
                await _say(interaction, f"⚠️ {error.user_message}")
                return
            emoji = "👍" if vote.up else "👎"
            thanks = "Thanks for the feedback" if vote.changed else "You had already rated this answer"
            await _say(interaction, f"{thanks} ({emoji}).")

    async def stop(self, interaction: Interaction, answer: int) -> None:
        with self._inflight.track():
            user = await self._accept(interaction)
            if user is None:
                return
            try:
                stopping = await self._core().stop(answer, user)
            except BotError as error:
                await _say(interaction, f"⚠️ {error.user_message}")
                return
            if not stopping.running:
                await _say(interaction, ALREADY_DONE)
            # else: the answer's reply ends with the note, and loses Stop, as it finishes

    async def retry(self, interaction: Interaction, answer: int) -> None:
        with self._inflight.track():
            user = await self._accept(interaction)
            if user is None:
                return
            old = interaction.message
            channel: Any = interaction.channel
            if not isinstance(channel, discord.abc.Messageable):
                channel = interaction.client.get_partial_messageable(interaction.channel_id or 0)
            replier = DiscordReplier(
                ChannelSink(channel), edit_interval=self._edit_interval, buttons=self.buttons
            )

            outcomes: list[TurnOutcome] = []

            async def rerun(again: IncomingMessage) -> TurnOutcome:
                with contextlib.suppress(discord.HTTPException):  # the old answer is out of the history
                    await interaction.edit_original_response(**_retried(old))
                outcomes.append(await self._services.turns.handle(again, replier))
                return outcomes[-1]

            try:
                await self._core().retry(answer, user, click=str(interaction.id), run=rerun)
            except BotError as error:
                await _say(interaction, f"⚠️ {error.user_message}")
                return
            if outcomes == [TurnOutcome.FAILED] and old is not None:
                # the core has put the old answer back in the history: its buttons come back now, not before
                # (a Retry clicked on them at once would find the answer still out of the history)
                with contextlib.suppress(discord.HTTPException):
                    await interaction.edit_original_response(
                        content=old.content, view=self.buttons.finished(answer), allowed_mentions=NO_MENTIONS
                    )

    def _core(self) -> CoreButtons:
        """The core's buttons; BotError (said to the clicker) where this service has none."""
        if self._services.buttons is None:
            raise BotError(UNAVAILABLE)
        return self._services.buttons

    async def _accept(self, interaction: Interaction) -> ChatUser | None:
        """Acknowledges the click at once, then admits it; the clicker as the core sees them, or None when
        the click is not to be acted on (a redelivery, too fast: told)."""
        try:
            await interaction.response.defer()  # a deferred update: within 3 s, the message unchanged
        except discord.HTTPException as exc:  # e.g. already acknowledged: a redelivered click
            log.info("click %s not acknowledged: HTTP %s (code %s)", interaction.id, exc.status, exc.code)
            return None
        user = chat_user(interaction.user, admin=interaction_is_admin(interaction))
        try:
            if not await self._services.commands.admit(
                PLATFORM, user.user_id, f"discord-click:{interaction.id}"
            ):
                log.info("click %s was handled before: dropped", interaction.id)
                return None
        except BotError as error:  # over the command rate limit
            await _say(interaction, f"⚠️ {error.user_message}")
            return None
        return user


def _retried(message: discord.Message | None) -> dict[str, Any]:
    """The edit of a retried answer's (last) message: no buttons, and the note when it fits."""
    edit: dict[str, Any] = {"view": None, "allowed_mentions": NO_MENTIONS}
    if message is not None and len(message.content) + len(RETRIED_NOTE) <= MESSAGE_LIMIT:
        edit["content"] = message.content + RETRIED_NOTE
    return edit


async def _say(interaction: Interaction, text: str) -> None:
    """``text`` to the clicker only."""
    try:
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer a click: HTTP %s (code %s)", exc.status, exc.code)
