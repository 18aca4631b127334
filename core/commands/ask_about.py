""" "Ask Threadwise about this" (a Slack message shortcut, a Discord message context-menu command): the turn
text built from the message someone picked and the messages before it, bounded in count and size.

The shortcut carries no question, so the model is asked to explain the message in its context. The text goes
through the normal turn (guards, redaction, moderation, budgets), like anything a user types: the context is
redacted and moderated before the model or the history sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CONTEXT_MESSAGES = 20  # earlier messages of the thread or channel read at most
CONTEXT_CHARS = 6_000  # of those, the newest that fit
MESSAGE_CHARS = 8_000  # of the message itself (Slack allows 40,000, Discord 2,000 or 4,000)
LINE_CHARS = 1_500  # of any one earlier message

INSTRUCTION = (
    "Explain the message below to me: what it says or asks, and anything I should know or do about it. "
    "Use the earlier messages only as context. Be brief."
)


@dataclass(frozen=True, slots=True)
class Quoted:
    """A message as the model sees it: who wrote it (a display name) and its plain text."""

    author: str
    text: str


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ask_about_text(message: Quoted, earlier: Sequence[Quoted], *, where: str) -> str:
    """The turn's text: the instruction, the newest of ``earlier`` (oldest first) that fit the bounds, and
    ``message``; ``where`` names the place, e.g. "Slack thread" or "Discord channel"."""
    lines: list[str] = []
    size = 0
    for quoted in reversed(list(earlier)[-CONTEXT_MESSAGES:]):
        text = _cut(quoted.text, LINE_CHARS)
        if not text:
            continue
        line = f"{quoted.author}: {text}"
        if size + len(line) > CONTEXT_CHARS:
            break
        lines.append(line)
        size += len(line) + 1
    parts = [INSTRUCTION]
    if lines:
        parts.append(f"Earlier in this {where}:\n" + "\n".join(reversed(lines)))
    parts.append(f"The message (from {message.author}):\n{_cut(message.text, MESSAGE_CHARS) or '(no text)'}")
    return "\n\n".join(parts)
