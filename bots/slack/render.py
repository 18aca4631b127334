"""Command replies (core/commands/results) as Slack mrkdwn.

Plain text is what people typed or the core wrote in words: it goes through ``to_mrkdwn`` like a model's
answer (so ``&``, ``<``, ``>`` are escaped and Markdown in it reads as it always has). Emphasis and headings
show in italics, code in backticks, tables in a code block.
"""

from __future__ import annotations

from bots.markup import Markup
from bots.slack.mrkdwn import escape, to_mrkdwn
from core.commands.results import Reply


def _italic(text: str) -> str:
    return f"_{escape(text)}_"


SLACK = Markup(
    text=to_mrkdwn,
    code=lambda text: f"`{escape(text)}`",
    emphasis=_italic,
    heading=_italic,
    preformatted=lambda text: f"```\n{escape(text)}\n```",
)


def render(reply: Reply) -> str:
    """The text of ``reply`` (files and visibility are the caller's)."""
    return SLACK.render(reply)
