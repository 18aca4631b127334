"""Gateway dispatches checked before discord.py reads them, and contained when it cannot.

discord.py reads each dispatch in its connection loop with ``ConnectionState.parsers[event](data)``: an
exception there (a missing key, a wrong type) ends the connection task, and the bot goes silent. The adapter
puts itself in that table once, before connecting:

- MESSAGE_CREATE and INTERACTION_CREATE, the events it acts on, are validated first (bots/discord/payloads.py)
  and discord.py gets the rebuilt payload. A message that does not validate is ignored; a command or click
  that does not validate is answered, only to its user, that it arrived malformed (when its id and token
  allow an answer at all).
- A click on a button no registered ``DynamicItem`` template matches, or on a button the clicked message does
  not carry (a forged custom id, or a button since removed), is answered, only to its user, that the button
  does nothing any more: discord.py would drop it unanswered and Discord would show "interaction failed".
- Every parser is contained: a dispatch discord.py still cannot read is dropped with one warning naming the
  event and the kind of error, and the connection lives on.

Log lines name events and fields, never values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import discord

from bots.discord import buttons, payloads
from bots.inflight import InFlight

log = logging.getLogger(__name__)

MALFORMED = "That command arrived incomplete or malformed, so I ignored it. Please try again."
STALE_BUTTON = "That button doesn't do anything any more."

Parser = Callable[[Any], None]


def guard_gateway(client: discord.Client, inflight: InFlight) -> None:
    """Puts the checks in front of ``client``'s parsers (call before it connects)."""
    state = client._connection
    parsers: dict[str, Parser] = state.parsers
    for event, parse in list(parsers.items()):
        parsers[event] = _contained(event, parse)
    parsers["MESSAGE_CREATE"] = _contained("MESSAGE_CREATE", _messages(state.parse_message_create))
    interactions = _interactions(state.parse_interaction_create, state, inflight)
    parsers["INTERACTION_CREATE"] = _contained("INTERACTION_CREATE", interactions)


def _contained(event: str, parse: Parser) -> Parser:
    def contained(data: Any) -> None:
        try:
            parse(data)
        except Exception as exc:  # one unreadable dispatch must not end the connection
            log.warning("Discord %s dropped: it could not be read (%s)", event, type(exc).__name__)

    return contained


def _messages(parse: Parser) -> Parser:
    def checked(data: Any) -> None:
        message = payloads.message_create(data)
        if message.payload is None:
            log.info("Discord message ignored: invalid %s", message.fields)
            return
        parse(message.payload)

    return checked


def _interactions(parse: Parser, state: Any, inflight: InFlight) -> Parser:
    def checked(data: Any) -> None:
        interaction = payloads.interaction_create(data)
        valid = interaction.payload
        if valid is not None and valid["type"] == 3 and not _known_button(state, valid):
            log.info("Discord click on an unknown button: answered")
            inflight.spawn(_tell(state, valid, STALE_BUTTON), name="discord unknown button")
            return
        if valid is not None:
            parse(valid)
            return
        key = payloads.interaction_key(data)
        log.info("Discord interaction %s: invalid %s", "answered" if key else "ignored", interaction.fields)
        if key is not None:
            inflight.spawn(_tell(state, key, MALFORMED), name="discord malformed interaction")

    return checked


def _known_button(state: Any, data: dict[str, Any]) -> bool:
    """The clicked button is on the message and some registered ``DynamicItem`` template matches its id."""
    custom_id = data["data"]["custom_id"]
    if not buttons.carries(data["message"], custom_id):
        return False
    store = getattr(state, "_view_store", None)  # discord.py's registry of add_dynamic_items
    templates: dict[re.Pattern[str], Any] | None = getattr(store, "_dynamic_items", None)
    if templates is None:  # not where this discord.py keeps them: let discord.py decide
        return True
    return any(template.fullmatch(custom_id) for template in templates)


async def _tell(state: Any, key: dict[str, Any], text: str) -> None:
    interaction: discord.Interaction[Any] = discord.Interaction(data=key, state=state)  # type: ignore[arg-type]
    try:
        await interaction.response.send_message(f"⚠️ {text}", ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer an interaction: HTTP %s (code %s)", exc.status, exc.code)
