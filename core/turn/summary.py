"""The running summary of a long conversation (``THREADWISE_HISTORY_SUMMARY``), as values: what is stored, how
the model reads it (a system message after the system prompt), the request that writes it, and the store's
port. The call that writes it is core/turn/summariser.py; the SQL store is core/turn/summary_store.py.

A summary covers the visible messages up to ``through_id``: the turns that fell out of the window. It is
updated incrementally: the next summary call reads the summary so far and the turns dropped since, never the
original turns again. The text one call reads is bounded (``THREADWISE_SUMMARY_INPUT_TOKENS``); a longer
gap is caught up over the next turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.llm.tokens import TokenCounter

SUMMARY_PREFIX = "Summary of the earlier conversation (it replaces the older messages of this thread):\n"
SUMMARISED_NOTE = (
    "This thread is long: its older messages are now summarised, "
    "and the model reads the summary in their place."
)
SUMMARY_SYSTEM = (
    "You keep the running summary of a long chat thread between people and an AI assistant. "
    "Update the summary so far with the new messages. Keep every fact, name, number, decision, "
    "preference and open question a later answer may need; drop pleasantries. Write only the "
    "summary, in the thread's language, as short plain sentences or bullet points."
)
_ROLES = {"user": "User", "assistant": "Assistant", "tool": "Tool result"}


@dataclass(frozen=True, slots=True)
class StoredSummary:
    """A conversation's summary: it covers the visible messages up to ``through_id``; ``tokens`` is the exact
    count of its message (``summary_wire``) in ``encoding``."""

    text: str
    through_id: int
    tokens: int
    encoding: str


@dataclass(frozen=True, slots=True)
class DroppedMessage:
    """A message that fell out of the window, as text (images and tool calls named, not included)."""

    id: int
    role: str
    text: str


class SummaryStore(Protocol):
    async def current(self, conversation_id: int) -> StoredSummary | None:
        """The conversation's summary (None: none, or its history was reset or erased since)."""
        ...

    async def dropped(
        self, conversation_id: int, after_id: int | None, before_id: int, limit: int = ...
    ) -> list[DroppedMessage]:
        """Visible messages with ``after_id < id < before_id``, oldest first."""
        ...

    async def save(self, conversation_id: int, summary: StoredSummary) -> None: ...


def summary_wire(text: str) -> dict[str, Any]:
    """The message the model reads in place of the summarised turns."""
    return {"role": "system", "content": SUMMARY_PREFIX + text}


def summary_slot(counter: TokenCounter, model: str, max_tokens: int) -> int:
    """The most tokens a summary message of at most ``max_tokens`` of text can take (the history gives them
    up while summaries are on, so a new summary always fits where the old one was)."""
    return counter.count_message(model, summary_wire(""), []) + max_tokens + 1  # +1: where text meets prefix


def summary_tokens(counter: TokenCounter, model: str, summary: StoredSummary) -> int:
    if summary.encoding == counter.encoding_for(model):
        return summary.tokens
    return counter.count_message(model, summary_wire(summary.text), [])


def summary_request(
    counter: TokenCounter,
    model: str,
    previous: StoredSummary | None,
    dropped: Sequence[DroppedMessage],
    input_tokens: int,
) -> tuple[list[dict[str, Any]], int] | None:
    """The messages of the summary call: the summary so far and as many dropped messages as fit
    ``input_tokens`` (a first message larger than that is cut), and the id of the last one read."""
    lines: list[str] = []
    used = 0
    through: int | None = None
    for item in dropped:
        line = f"{_ROLES.get(item.role, item.role)}: {item.text}"
        size = counter.count_text(model, line) + 1
        if used + size > input_tokens:
            if through is None:
                lines.append(counter.truncate(model, line, max(0, input_tokens - 4)) + " […]")
                through = item.id
            break
        lines.append(line)
        used += size
        through = item.id
    if through is None:
        return None
    so_far = f"The summary so far:\n{previous.text}\n\n" if previous is not None else ""
    content = f"{so_far}New messages to add to it:\n" + "\n".join(lines)
    return [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": content}], through
