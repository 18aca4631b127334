"""A replica's cache of rows read on every turn (channel policies, personas), kept true by notices: an entry
is dropped when a notice says its row changed (on any replica), everything is dropped when the listening
connection (re)opens (notices may have been missed meanwhile), and an entry older than ``ttl`` is read again
(the safety net should a notice be lost anyway).

A read that was under way when its entry was dropped does not store what it read: it may predate the change
(``generation``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

MAX_ENTRIES = 10_000  # beyond it the cache starts over (one entry per channel or workspace in use)
SAFETY_TTL = 60.0  # seconds: how long an entry is trusted should its change notice be lost

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReplicaCache(Generic[K, V]):
    def __init__(self, *, ttl: float = SAFETY_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self.generation = 0  # bumped by every drop: a read started before it does not store

    def get(self, key: K) -> tuple[bool, V | None]:
        """(True, value) for a fresh entry, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V, generation: int) -> None:
        """Store what a read begun at ``generation`` found, unless something was dropped since."""
        if generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (self._clock(), value)

    def drop(self, key: K) -> None:
        self.generation += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
