"""The whole-turn time limit (``THREADWISE_TURN_TIMEOUT``): guards, every model call and tool round and the
output moderation run inside it; past it the turn is cancelled and leaves as TurnTimedOut."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import TracebackType

from core.domain.errors import TurnTimedOut


class TurnDeadline:
    """An async context manager; ``when`` is the ``loop.time()`` the turn must end by (None: no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self.when: float | None = None
        self._scope: asyncio.Timeout | None = None
        self._waits = 0  # waits for a person under way (tool approvals of one response)
        self._left = 0.0  # the turn's time left when the first of them began

    async def __aenter__(self) -> TurnDeadline:
        if self._seconds is not None:
            self.when = asyncio.get_running_loop().time() + self._seconds
            self._scope = asyncio.timeout_at(self.when)
            await self._scope.__aenter__()
        return self

    @contextlib.contextmanager
    def paused(self, seconds: float) -> Iterator[None]:
        """The turn waits for a person, at most ``seconds``: that time does not count against the turn.
        While it waits the deadline is pushed past the wait; when the last wait ends, the turn has the
        time it had left when the first began. Overlapping waits (several approvals) count once."""
        if self._scope is None or self.when is None:
            yield
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._waits == 0:
            self._left = max(0.0, self.when - now)
        self._waits += 1
        pushed = now + seconds + self._left
        current = self._scope.when()
        if current is None or pushed > current:
            self._scope.reschedule(pushed)
        try:
            yield
        finally:
            self._waits -= 1
            if self._waits == 0:
                self.when = loop.time() + self._left
                if not self._scope.expired():
                    self._scope.reschedule(self.when)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._scope is None:
            return
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            assert self._seconds is not None
            raise TurnTimedOut(self._seconds) from None
