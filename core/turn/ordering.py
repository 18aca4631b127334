"""Per-conversation ordering: turns of one conversation run one at a time, in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0


class KeyedLocks:
    """One FIFO lock per key, created on demand and dropped when nobody holds or waits for it.

    ``asyncio.Lock`` hands the lock to waiters in the order they asked, so callers that enter ``hold`` in
    arrival order run in arrival order. Different keys never wait for each other.
    """

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        slot.holders += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.holders -= 1
            if slot.holders == 0:
                del self._slots[key]

    def __len__(self) -> int:
        return len(self._slots)
