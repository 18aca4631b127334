"""How many of one user's messages may be downloading files at once: a few, so one user sending many messages
with large files cannot hold many times the per-message limit in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

PER_USER = 2


class DownloadSlots:
    """A small semaphore per user, dropped once nobody holds or waits for it."""

    def __init__(self, per_user: int = PER_USER) -> None:
        self._per_user = per_user
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def slot(self, user: str) -> AsyncIterator[None]:
        semaphore, users = self._slots.get(user) or (asyncio.Semaphore(self._per_user), 0)
        self._slots[user] = (semaphore, users + 1)
        try:
            async with semaphore:
                yield
        finally:
            semaphore, users = self._slots[user]
            if users <= 1:
                del self._slots[user]
            else:
                self._slots[user] = (semaphore, users - 1)

    def __len__(self) -> int:
        return len(self._slots)
