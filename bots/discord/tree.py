"""The slash-command tree: what happens around every command, before it runs and when it fails.

- Before: ``Commands.admit`` (core/commands/admission.py), as for Slack's slash commands. An interaction id
  seen before is dropped (claimed in processed_events, so across replicas and restarts too), and a user over
  ``THREADWISE_COMMAND_RATE_LIMIT`` is told when to try again; neither reaches the command.
- On failure: the user always gets an answer, only they see it, and it is never a traceback. A command
  whose options no longer match what Discord has registered (after an upgrade, until Discord's clients have
  the new definition) is answered that it changed; a value of the wrong type that it arrived malformed;
  anything else with the generic apology. Only a failure of our own code is logged with its traceback.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bots.discord.commands import Interaction, show_error
from bots.discord.gateway import MALFORMED
from bots.discord.identity import PLATFORM
from core.domain.errors import BotError

if TYPE_CHECKING:
    from core.commands.dispatch import Commands

log = logging.getLogger(__name__)

CHANGED = "This command changed; Discord is updating it. Please try again in a minute."
NOT_HERE = "This command can't be used here."


class CommandTree(app_commands.CommandTree[Any]):
    def __init__(self, client: discord.Client, commands: Commands) -> None:
        super().__init__(client)
        self._commands = commands

    async def interaction_check(self, interaction: Interaction, /) -> bool:
        """Admission of every command (discord.py calls it before it looks the command up)."""
        try:
            delivery = f"discord-command:{interaction.id}"
            if await self._commands.admit(PLATFORM, str(interaction.user.id), delivery):
                return True
            log.info("interaction %s was handled before: dropped", interaction.id)
        except BotError as error:  # over the command rate limit
            await _tell(interaction, error)
        except Exception:
            log.exception("could not admit interaction %s", interaction.id)
            await _tell(interaction, BotError())
        return False

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError, /) -> None:
        await report_failure(interaction, error)


async def report_failure(interaction: Interaction, error: app_commands.AppCommandError) -> None:
    """Answers the user of a failed command (see the module docstring) and logs why."""
    name = getattr(interaction.command, "qualified_name", None) or _sent_name(interaction)
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    answer: BotError
    if isinstance(error, app_commands.CommandSignatureMismatch | app_commands.CommandNotFound):
        log.warning("/%s does not match the registered commands (%s): told it changed", name, _kind(error))
        answer = BotError(CHANGED)
    elif isinstance(error, app_commands.TransformerError):
        log.warning("/%s had an option of the wrong type: told it was malformed", name)
        answer = BotError(MALFORMED)
    elif isinstance(error, app_commands.CheckFailure):
        log.info("/%s refused by a check (%s)", name, _kind(error))
        answer = BotError(NOT_HERE)
    elif isinstance(original, BotError):
        answer = original
    elif isinstance(original, discord.HTTPException):
        log.warning("/%s failed: Discord answered HTTP %s (code %s)", name, original.status, original.code)
        answer = BotError()
    else:
        log.error("/%s failed", name, exc_info=original)
        answer = BotError()
    await _tell(interaction, answer)


async def _tell(interaction: Interaction, error: BotError) -> None:
    try:
        await show_error(interaction, error)
    except discord.HTTPException as exc:
        log.warning("could not tell the user of a failed command: HTTP %s (code %s)", exc.status, exc.code)


def _sent_name(interaction: Interaction) -> str:
    data: dict[str, Any] = dict(interaction.data or {})
    return str(data.get("name") or "?")


def _kind(error: Exception) -> str:
    return type(error).__name__
