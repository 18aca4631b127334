"""Command replies (core/commands/results) as Discord markdown.

Plain text goes out as written (Discord reads Markdown in it, as in anything typed); emphasis and headings
are ``*italic*``, code in backticks, tables in a code block.
"""

from __future__ import annotations

from bots.markup import Markup
from core.commands.results import Reply


def _italic(text: str) -> str:
    return f"*{text}*"


DISCORD = Markup(
    code=lambda text: f"`{text}`",
    emphasis=_italic,
    heading=_italic,
    preformatted=lambda text: f"```\n{text}\n```",
)


def render(reply: Reply) -> str:
    """The text of ``reply`` (files and visibility are the caller's)."""
    return DISCORD.render(reply)
