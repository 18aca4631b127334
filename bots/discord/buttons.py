"""The buttons under an answer on Discord: 👍 / 👎 and Retry under a finished answer, Stop while it streams.

Each button is a ``discord.ui.DynamicItem``: its ``custom_id`` names the answer (the claim id the core gives
the replier), e.g. ``tw:fb:up:<answer>``, ``tw:stop:<answer>``, ``tw:retry:<answer>``, and the client knows
the templates from the start (``client.add_dynamic_items``), so a click on a message sent before a restart,
or by another replica, is understood. Nothing is kept per message: the views sent are made of dynamic items
only (``timeout=None``), which discord.py's view store keeps no entry for.

What a click does is a ``ButtonActions`` (bots/discord/clicks.py); a custom id that matches no template, or
a button the clicked message does not carry, never reaches it (bots/discord/gateway.py answers those).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import discord
from discord.ui import DynamicItem

# At most 18 digits: every such number fits a signed 64-bit column (a longer, forged one matches nothing).
ANSWER = r"(?P<answer>[1-9][0-9]{0,17})"
FEEDBACK = re.compile(rf"tw:fb:(?P<vote>up|down):{ANSWER}")
STOP = re.compile(rf"tw:stop:{ANSWER}")
RETRY = re.compile(rf"tw:retry:{ANSWER}")
TEMPLATES = (FEEDBACK, STOP, RETRY)

Interaction = discord.Interaction[Any]
Button = discord.ui.Button[Any]


class ButtonActions(Protocol):
    """What a click on an answer's button does; ``answer`` is the answer's claim id."""

    async def vote(self, interaction: Interaction, answer: int, *, up: bool) -> None: ...

    async def stop(self, interaction: Interaction, answer: int) -> None: ...

    async def retry(self, interaction: Interaction, answer: int) -> None: ...


def feedback_id(answer: int, *, up: bool) -> str:
    return f"tw:fb:{'up' if up else 'down'}:{answer}"


def stop_id(answer: int) -> str:
    return f"tw:stop:{answer}"


def retry_id(answer: int) -> str:
    return f"tw:retry:{answer}"


@dataclass(frozen=True, slots=True)
class AnswerButtons:
    """The three kinds of button of one client (their callbacks call its ``ButtonActions``) and the rows
    the replier puts under an answer."""

    items: tuple[type[DynamicItem[Button]], ...]  # what ``client.add_dynamic_items`` takes
    feedback: Callable[[int, bool], DynamicItem[Button]]
    stop: Callable[[int], DynamicItem[Button]]
    retry: Callable[[int], DynamicItem[Button]]

    def streaming(self, answer: int) -> discord.ui.View:
        """While the answer streams: Stop."""
        view = discord.ui.View(timeout=None)
        view.add_item(self.stop(answer))
        return view

    def finished(self, answer: int, *, retry: bool = True) -> discord.ui.View:
        """Under a finished (or stopped) answer: 👍, 👎 and, on the conversation's last answer, Retry."""
        view = discord.ui.View(timeout=None)
        view.add_item(self.feedback(answer, True))
        view.add_item(self.feedback(answer, False))
        if retry:
            view.add_item(self.retry(answer))
        return view


def answer_buttons(actions: ButtonActions) -> AnswerButtons:
    """The button classes of one client, bound to ``actions`` (one set per client: no global state)."""

    class Feedback(DynamicItem[Button], template=FEEDBACK):
        def __init__(self, answer: int, up: bool) -> None:
            super().__init__(
                discord.ui.Button(
                    style=discord.ButtonStyle.secondary,
                    emoji="👍" if up else "👎",
                    custom_id=feedback_id(answer, up=up),
                )
            )
            self.answer, self.up = answer, up

        @classmethod
        async def from_custom_id(
            cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
        ) -> Feedback:
            return cls(int(match["answer"]), match["vote"] == "up")

        async def callback(self, interaction: Interaction) -> None:
            await actions.vote(interaction, self.answer, up=self.up)

    class Stop(DynamicItem[Button], template=STOP):
        def __init__(self, answer: int) -> None:
            super().__init__(
                discord.ui.Button(
                    style=discord.ButtonStyle.danger, label="Stop", emoji="⏹️", custom_id=stop_id(answer)
                )
            )
            self.answer = answer

        @classmethod
        async def from_custom_id(
            cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
        ) -> Stop:
            return cls(int(match["answer"]))

        async def callback(self, interaction: Interaction) -> None:
            await actions.stop(interaction, self.answer)

    class Retry(DynamicItem[Button], template=RETRY):
        def __init__(self, answer: int) -> None:
            super().__init__(
                discord.ui.Button(
                    style=discord.ButtonStyle.secondary, label="Retry", emoji="🔄", custom_id=retry_id(answer)
                )
            )
            self.answer = answer

        @classmethod
        async def from_custom_id(
            cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
        ) -> Retry:
            return cls(int(match["answer"]))

        async def callback(self, interaction: Interaction) -> None:
            await actions.retry(interaction, self.answer)

    return AnswerButtons((Feedback, Stop, Retry), Feedback, Stop, Retry)


def carries(message: dict[str, Any], custom_id: str) -> bool:
    """Whether the message payload ``message`` shows a button ``custom_id`` (a click on anything else is
    forged, or on a button since removed)."""
    rows = message.get("components") or []
    return any(button.get("custom_id") == custom_id for row in rows for button in row.get("components") or [])
