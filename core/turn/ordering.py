"""Per-conversation ordering: turns of one conversation run one at a time, in arrival order.

Across replicas the order is the database queue's (``TurnStore.claim``/``place``); ``Waiters`` wakes this
process's waiting turns when an earlier one finishes here. ``KeyedLocks`` makes a command on a conversation
(``/ai model``, ``/ai reset``) wait for the turn this process is running in it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
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


class Waiters:
    """Wakes the turns of this process that wait for a conversation's earlier turn to finish.

    Turns wait for their place in the database queue (shared by every replica); when the earlier turn ran
    here, ``finished`` wakes them at once, otherwise they look again after ``poll`` seconds, then less and
    less often, at most every ``max_poll`` seconds.
    """

    def __init__(self, *, poll: float = 0.1, max_poll: float = 1.0) -> None:
        self._poll = poll
        self._max_poll = max_poll
        self._events: dict[Hashable, tuple[asyncio.Event, int]] = {}

    async def wait_until(self, key: Hashable, ready: Callable[[], Awaitable[bool]]) -> None:
        """Until ``ready()`` is true, asked again after each wake-up or poll interval (the caller bounds
        the wait)."""
        delay = self._poll
        while not await ready():
            event = self._enter(key)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), delay)
            finally:
                self._leave(key, event)
            delay = min(delay * 2, self._max_poll)

    def finished(self, key: Hashable) -> None:
        """A turn of ``key`` finished here: its followers look at their place now."""
        found = self._events.pop(key, None)
        if found is not None:
            found[0].set()

    def _enter(self, key: Hashable) -> asyncio.Event:
        event, count = self._events.get(key, (asyncio.Event(), 0))
        self._events[key] = (event, count + 1)
        return event

    def _leave(self, key: Hashable, event: asyncio.Event) -> None:
        found = self._events.get(key)
        if found is None or found[0] is not event:
            return  # woken by ``finished``, which dropped the entry
        count = found[1]
        if count <= 1:
            del self._events[key]
        else:
            self._events[key] = (event, count - 1)

    def __len__(self) -> int:
        return len(self._events)
