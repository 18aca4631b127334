"""Per-conversation arrival order in an adapter: events of one conversation may be prepared concurrently
(user lookup, file downloads) but are handed to the core one at a time, in the order they arrived, so a
follow-up behind a message with a large file is never answered first. Different conversations never wait
for each other.

    async with arrivals.arrive(key) as place:   # taken in arrival order
        prepared = await prepare(event)          # concurrent with earlier arrivals of ``key``
        async with place:                        # earlier arrivals of ``key`` have been handed over
            await core.handle(prepared)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from types import TracebackType


class Place:
    """One event's place in its conversation's line; entering it waits for the events ahead."""

    def __init__(self, ahead: Place | None) -> None:
        self.ahead = ahead  # kept until this event's turn came: one that gives up earlier passes it on
        self.done = asyncio.Event()  # this event has been handed over, or given up

    @property
    def first(self) -> bool:
        """No event ahead of this one is still being prepared or handed over."""
        return _running_ahead(self) is None

    async def __aenter__(self) -> None:
        ahead = self.ahead
        while ahead is not None:
            await ahead.done.wait()
            ahead = ahead.ahead  # not None only if that event gave up before its turn
        self.ahead = None

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.done.set()


class Arrivals:
    """The line of each conversation, created on demand and dropped when its last event is through."""

    def __init__(self) -> None:
        self._last: dict[Hashable, Place] = {}

    @asynccontextmanager
    async def arrive(self, key: Hashable) -> AsyncIterator[Place]:
        """A place behind every event of ``key`` that arrived before; released when the block ends."""
        ahead = self._last.get(key)
        place = self._last[key] = Place(ahead)
        try:
            yield place
        finally:
            place.done.set()
            if self._last.get(key) is place:
                self._leave(key, place)

    def _leave(self, key: Hashable, place: Place) -> None:
        """The last event of ``key`` is through: the line ends, or, if it gave up before its turn, its end
        is the first event ahead still running."""
        ahead = _running_ahead(place)
        if ahead is None:
            del self._last[key]
        else:
            self._last[key] = ahead

    def __len__(self) -> int:
        return len(self._last)


def _running_ahead(place: Place) -> Place | None:
    """The nearest event ahead of ``place`` that is not through yet, if any."""
    ahead = place.ahead
    while ahead is not None and ahead.done.is_set():
        ahead = ahead.ahead
    return ahead
