"""Gateway dispatches checked before discord.py reads them, and contained when it cannot.

discord.py reads each dispatch in its connection loop with ``ConnectionState.parsers[event](data)``: an
exception there (a missing key, a wrong type) ends the connection task, and the bot goes silent. The adapter
puts itself in that table once, before connecting:

- MESSAGE_CREATE and INTERACTION_CREATE, the events it acts on, are validated first (bots/discord/payloads.py)
  and discord.py gets the rebuilt payload. A message that does not validate is ignored; a command that does
  not validate is answered, only to its user, that it arrived malformed (when its id and token allow an
  answer at all).
- Every parser is contained: a dispatch discord.py still cannot read is dropped with one warning naming the
  event and the kind of error, and the connection lives on.

Log lines name events and fields, never values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import discord

from bots.discord import payloads
from bots.discord.components import component_interaction
from bots.inflight import InFlight

log = logging.getLogger(__name__)

MALFORMED = "That command arrived incomplete or malformed, so I ignored it. Please try again."

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
        if isinstance(data, dict) and data.get("type") == 3:  # a button click (bots/discord/components.py)
            click = component_interaction(data)
            if click.payload is not None:
                parse(click.payload)
            else:
                log.info("Discord button click ignored: invalid %s", click.fields)
            return
        interaction = payloads.interaction_create(data)
        if interaction.payload is not None:
            parse(interaction.payload)
            return
        key = payloads.interaction_key(data)
        log.info("Discord command %s: invalid %s", "answered" if key else "ignored", interaction.fields)
        if key is not None:
            inflight.spawn(_tell_malformed(state, key), name="discord malformed command")

    return checked


async def _tell_malformed(state: Any, key: dict[str, Any]) -> None:
    interaction: discord.Interaction[Any] = discord.Interaction(data=key, state=state)  # type: ignore[arg-type]
    try:
        await interaction.response.send_message(f"⚠️ {MALFORMED}", ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer a malformed command: HTTP %s (code %s)", exc.status, exc.code)
