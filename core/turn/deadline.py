"""The whole-turn time limit (``THREADWISE_TURN_TIMEOUT``): guards, every model call and tool round and the
output moderation run inside it; past it the turn is cancelled and leaves as TurnTimedOut."""

from __future__ import annotations

import asyncio
from types import TracebackType

from core.domain.errors import TurnTimedOut


class TurnDeadline:
    """An async context manager; ``when`` is the ``loop.time()`` the turn must end by (None: no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self.when: float | None = None
        self._scope: asyncio.Timeout | None = None

    async def __aenter__(self) -> TurnDeadline:
        if self._seconds is not None:
            self.when = asyncio.get_running_loop().time() + self._seconds
            self._scope = asyncio.timeout_at(self.when)
            await self._scope.__aenter__()
        return self

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
