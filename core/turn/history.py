"""Conversation history as the model sees it: stored rows -> wire messages, exact trimming, a window cache.

A turn needs only the newest messages that fit the model's window, so history is read newest-first and
stops as soon as the budget is exceeded; an in-process cache of that window makes the next turn of the same
conversation read one indexed ``max(id)`` instead of the rows. Either way a turn's cost does not grow with
the length of the thread.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.db.models import Message
from core.db.repositories import MessageRepository
from core.db.session import Database
from core.domain.ports import HistoryEntry
from core.llm.tokens import TokenCounter

PAGE_SIZE = 200


def wire_message(
    role: str,
    parts: Sequence[dict[str, Any]],
    images: Sequence[tuple[str, bytes]] = (),
    *,
    tool_calls: Sequence[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
) -> dict[str, Any]:
    """A Chat Completions message from stored content parts; ``images`` are (mime, bytes) by position."""
    text = "".join(str(part["text"]) for part in parts if part.get("type") == "text")
    if role == "tool":
        return {"role": "tool", "tool_call_id": tool_call_id, "content": text}
    if role == "assistant":
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if tool_calls:
            message["tool_calls"] = list(tool_calls)
        return message
    if not any(part.get("type") == "image" for part in parts):
        return {"role": role, "content": text}
    content: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") == "text":
            content.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image":
            mime, data = images[int(part["attachment"])]
            url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            content.append(
                {"type": "image_url", "image_url": {"url": url, "detail": part.get("detail", "auto")}}
            )
    return {"role": role, "content": content}


def entry_from_row(row: Message, model: str, counter: TokenCounter, encoding: str) -> HistoryEntry:
    """The wire form of a stored message; its stored token count is reused unless the encoding changed."""
    attachments = row.attachments
    wire = wire_message(
        row.role,
        row.content,
        [(a.mime, a.data) for a in attachments],
        tool_calls=row.tool_calls,
        tool_call_id=row.tool_call_id,
    )
    tokens = row.token_count
    if row.token_encoding != encoding:
        tokens = counter.count_message(model, wire, [(a.width or 0, a.height or 0) for a in attachments])
    return HistoryEntry(message_id=row.id, role=row.role, wire=wire, tokens=tokens)


def trim(entries: Sequence[HistoryEntry], budget: int) -> list[HistoryEntry]:
    """The newest whole turns whose tokens fit ``budget``.

    A turn is a user message with everything that answered it (assistant messages, tool calls and their
    results), so a tool call never loses its results and history never starts mid-turn. Turns are dropped
    from the oldest end; messages before the first user message (a window cut mid-turn) are never kept.
    """
    kept_from = len(entries)
    used = 0
    unit_tokens = 0
    for index in range(len(entries) - 1, -1, -1):
        unit_tokens += entries[index].tokens
        if entries[index].role != "user":
            continue  # part of the turn that the user message before it started
        if used + unit_tokens > budget:
            break
        used += unit_tokens
        unit_tokens = 0
        kept_from = index
    return list(entries[kept_from:])


@dataclass(slots=True)
class _Window:
    encoding: str
    entries: list[HistoryEntry]
    complete: bool  # holds every visible message of the conversation
    budget: int  # the budget it was loaded for (it holds at least that much unless complete)
    version: int = 0  # the conversation's history_version when it was loaded

    @property
    def last_id(self) -> int | None:
        return self.entries[-1].message_id if self.entries else None


class HistoryStore:
    """Reads the trimmed history of a conversation, caching each conversation's window in memory (the
    HistoryWindow of the turn)."""

    def __init__(self, database: Database, counter: TokenCounter, *, cache_size: int = 256) -> None:
        self._database = database
        self._counter = counter
        self._cache_size = cache_size
        self._cache: OrderedDict[int, _Window] = OrderedDict()

    async def window(
        self, conversation_id: int, model: str, budget: int, *, ceiling: int | None = None
    ) -> tuple[list[HistoryEntry], int | None]:
        """The newest history fitting ``budget`` tokens, and the id of the newest visible message.

        ``ceiling`` (>= budget) is the most any turn of this conversation can fit (the window without the new
        message); a window loaded for it serves every later turn whatever its message length.
        """
        ceiling = max(budget, ceiling or budget)
        encoding = self._counter.encoding_for(model)
        cached = self._cache.get(conversation_id)
        async with self._database.reader() as session:
            repo = MessageRepository(session)
            latest, version = await repo.state(conversation_id)  # read before loading: a change after it
            if (  # makes the next turn reload, never serve stale history
                cached is not None
                and cached.encoding == encoding
                and (cached.complete or budget <= cached.budget)
                and (latest, version) == (cached.last_id, cached.version)
            ):
                self._cache.move_to_end(conversation_id)
                return trim(cached.entries, budget), cached.last_id
            loaded = await self._load(repo, conversation_id, model, encoding, ceiling)
            loaded.version = version
        self._remember(conversation_id, loaded)
        return trim(loaded.entries, budget), loaded.last_id

    def appended(
        self, conversation_id: int, previous_last_id: int | None, entries: Sequence[HistoryEntry]
    ) -> None:
        """A turn stored ``entries`` after ``previous_last_id``; extend the cached window if it is current."""
        cached = self._cache.get(conversation_id)
        if cached is None:
            return
        if cached.last_id != previous_last_id:
            del self._cache[conversation_id]
            return
        cached.entries.extend(entries)
        kept = trim(cached.entries, cached.budget)
        if len(kept) < len(cached.entries):
            cached.complete = False
        cached.entries = kept

    def forget(self, conversation_id: int) -> None:
        self._cache.pop(conversation_id, None)

    async def _load(
        self, repo: MessageRepository, conversation_id: int, model: str, encoding: str, budget: int
    ) -> _Window:
        newest_first: list[HistoryEntry] = []
        used = 0
        before: int | None = None
        complete = False
        while used <= budget:
            rows = await repo.newest_first(conversation_id, before_id=before, limit=PAGE_SIZE)
            for row in rows:
                entry = entry_from_row(row, model, self._counter, encoding)
                newest_first.append(entry)
                used += entry.tokens
                if used > budget:
                    break
            if len(rows) < PAGE_SIZE and used <= budget:
                complete = True
                break
            before = rows[-1].id
        newest_first.reverse()
        return _Window(encoding=encoding, entries=newest_first, complete=complete, budget=budget)

    def _remember(self, conversation_id: int, window: _Window) -> None:
        if self._cache_size <= 0:
            return
        self._cache[conversation_id] = window
        self._cache.move_to_end(conversation_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
