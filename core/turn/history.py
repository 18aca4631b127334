"""Conversation history as the model sees it: stored rows -> wire messages, exact trimming, a window cache.

A turn needs only the newest messages that fit the model's window, so history is read newest-first and
stops as soon as the budget is exceeded; an in-process cache of that window makes the next turn of the same
conversation read one indexed ``max(id)`` instead of the rows. Either way a turn's cost does not grow with
the length of the thread.

The cache is bounded in bytes (``THREADWISE_HISTORY_CACHE_MB``) as well as in conversations, and holds no
image data: a cached message with images keeps its exact token count and is read back from the database,
by primary key, when a window that includes it is used.
"""

from __future__ import annotations

import base64
import sys
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from core.db.models import Message
from core.db.repositories import MessageRepository
from core.db.session import Database
from core.domain.ports import HistoryEntry
from core.llm.tokens import TokenCounter
from core.metrics import Metrics

PAGE_SIZE = 200
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class _ReadState:
    """A conversation's state as the turn's claim read it."""

    conversation_id: int | None  # None: the claim found no conversation of the turn's key
    newest: int | None  # the newest visible message id
    version: int  # the history version


_read: ContextVar[_ReadState | None] = ContextVar("threadwise_history_state", default=None)


@contextmanager
def state_as_read(conversation_id: int | None, newest: int | None, version: int) -> Iterator[None]:
    """The turn read the conversation's state with its claim (nothing of it changes while the turn is the
    conversation's only one running): a current cached window is served without reading it again, and a
    conversation with no visible message has an empty window. ``conversation_id`` None: the claim found no
    conversation; the one the turn opens (``opened``) has no history yet."""
    token = _read.set(_ReadState(conversation_id, newest, version))
    try:
        yield
    finally:
        _read.reset(token)


def opened(conversation_id: int) -> None:
    """The turn opened its conversation, which its claim did not find (no turn of it was unfinished and no
    earlier one had stored anything): its history is empty, known without reading it."""
    state = _read.get()
    if state is not None and state.conversation_id is None:
        state.conversation_id = conversation_id


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


def stored_wire(row: Message) -> dict[str, Any]:
    """The wire form of a stored message (its attachments loaded)."""
    return wire_message(
        row.role,
        row.content,
        [(a.mime, a.data) for a in row.attachments],
        tool_calls=row.tool_calls,
        tool_call_id=row.tool_call_id,
    )


def entry_from_row(row: Message, model: str, counter: TokenCounter, encoding: str) -> HistoryEntry:
    """The wire form of a stored message; its stored token count is reused unless the encoding changed."""
    wire = stored_wire(row)
    tokens = row.token_count
    if row.token_encoding != encoding:
        sizes = [(a.width or 0, a.height or 0) for a in row.attachments]
        tokens = counter.count_message(model, wire, sizes)
    return HistoryEntry(message_id=row.id, role=row.role, wire=wire, tokens=tokens)


def has_images(wire: dict[str, Any]) -> bool:
    content = wire.get("content")
    return isinstance(content, list) and any(part.get("type") == "image_url" for part in content)


def _weight(value: Any) -> int:
    """Bytes a wire value holds, as ``sys.getsizeof`` counts its containers and strings."""
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(_weight(key) + _weight(item) for key, item in value.items())
    if isinstance(value, list):
        return sys.getsizeof(value) + sum(_weight(item) for item in value)
    return sys.getsizeof(value)


def _entry_weight(entry: HistoryEntry) -> int:
    return sys.getsizeof(entry) + _weight(entry.wire)


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
    complete: bool  # holds every visible message of the conversation
    budget: int  # the budget it was loaded for (it holds at least that much unless complete)
    version: int  # the conversation's history_version when it was loaded
    entries: list[HistoryEntry] = field(default_factory=list)  # image messages as stubs (role only)
    images: set[int] = field(default_factory=set)  # ids of the messages whose wire is read back when used
    size: int = 0  # bytes held by the entries

    @property
    def last_id(self) -> int | None:
        return self.entries[-1].message_id if self.entries else None

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        for entry in entries:
            if has_images(entry.wire):
                self.images.add(entry.message_id)
                entry = HistoryEntry(entry.message_id, entry.role, {"role": entry.role}, entry.tokens)
            self.entries.append(entry)
            self.size += _entry_weight(entry)

    def keep_newest(self, count: int) -> None:
        cut = len(self.entries) - count
        dropped, self.entries = self.entries[:cut], self.entries[cut:]
        for entry in dropped:
            self.size -= _entry_weight(entry)
            self.images.discard(entry.message_id)


class HistoryStore:
    """Reads the trimmed history of a conversation, caching each conversation's window in memory (the
    HistoryWindow of the turn), at most ``cache_size`` windows and ``cache_bytes`` bytes of them."""

    def __init__(
        self,
        database: Database,
        counter: TokenCounter,
        *,
        cache_size: int = 256,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._database = database
        self._counter = counter
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[int, _Window] = OrderedDict()
        self._bytes = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cached windows (image data is never among them)."""
        return self._bytes

    @property
    def cached_conversations(self) -> int:
        return len(self._cache)

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
        read = _read.get()
        if read is not None and read.conversation_id == conversation_id and read.newest is None:
            # No visible message when the claim looked, and no other turn ran since: an empty window,
            # remembered as a load would be (the turn's own messages extend it). Neither a hit nor a miss.
            self._remember(conversation_id, _Window(encoding, True, ceiling, read.version))
            return [], None
        if (
            read is not None
            and read.conversation_id == conversation_id
            and cached is not None
            and not cached.images
            and cached.encoding == encoding
            and (cached.complete or budget <= cached.budget)
            and (read.newest, read.version) == (cached.last_id, cached.version)
        ):
            self._cache.move_to_end(conversation_id)
            self._count("hit")
            return trim(cached.entries, budget), cached.last_id
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
                served = await _with_images(repo, trim(cached.entries, budget), cached.images)
                if served is not None:
                    self._count("hit")
                    return served, cached.last_id
            self._count("miss")
            entries, complete = await self._load(repo, conversation_id, model, encoding, ceiling)
        loaded = _Window(encoding=encoding, complete=complete, budget=ceiling, version=version)
        loaded.add(entries)
        self._remember(conversation_id, loaded)
        return trim(entries, budget), loaded.last_id

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.history_cache.labels(result).inc()

    def appended(
        self, conversation_id: int, previous_last_id: int | None, entries: Sequence[HistoryEntry]
    ) -> None:
        """A turn stored ``entries`` after ``previous_last_id``; extend the cached window if it is current."""
        cached = self._cache.get(conversation_id)
        if cached is None:
            return
        if cached.last_id != previous_last_id:
            self.forget(conversation_id)
            return
        before = cached.size
        cached.add(entries)
        kept = trim(cached.entries, cached.budget)
        if len(kept) < len(cached.entries):
            cached.complete = False
            cached.keep_newest(len(kept))
        self._bytes += cached.size - before
        self._evict()

    def forget(self, conversation_id: int) -> None:
        window = self._cache.pop(conversation_id, None)
        if window is not None:
            self._bytes -= window.size

    async def _load(
        self, repo: MessageRepository, conversation_id: int, model: str, encoding: str, budget: int
    ) -> tuple[list[HistoryEntry], bool]:
        """The newest entries as far as ``budget`` (one past it), oldest first, and whether that is all."""
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
        return newest_first, complete

    def _remember(self, conversation_id: int, window: _Window) -> None:
        self.forget(conversation_id)
        if self._cache_size <= 0:
            return
        self._cache[conversation_id] = window
        self._bytes += window.size
        self._evict()

    def _evict(self) -> None:
        """Drop the least recently used windows until both bounds hold."""
        while self._cache and (len(self._cache) > self._cache_size or self._bytes > self._cache_bytes):
            _, window = self._cache.popitem(last=False)
            self._bytes -= window.size


async def _with_images(
    repo: MessageRepository, entries: list[HistoryEntry], images: set[int]
) -> list[HistoryEntry] | None:
    """``entries`` with the wire of each image message read back from the database (None: one is gone)."""
    wanted = [entry.message_id for entry in entries if entry.message_id in images]
    if not wanted:
        return entries
    rows = {row.id: row for row in await repo.with_attachments(wanted)}
    if len(rows) < len(set(wanted)):
        return None
    return [
        HistoryEntry(entry.message_id, entry.role, stored_wire(rows[entry.message_id]), entry.tokens)
        if entry.message_id in rows
        else entry
        for entry in entries
    ]
