"""The time bounds of one streamed model call: its first delta (text or a tool call) within the first-token
timeout of sending the request, retries included, and every later chunk within the stall bound of the one
before. A call past a bound is cancelled and leaves as LLMUnavailable with a message that says so."""

from __future__ import annotations

import asyncio
from types import TracebackType

from core.domain.errors import LLMUnavailable


class Watchdog:
    """An async context manager around one call. Checking costs one timer per bound, not one per chunk:
    ``beat`` only moves the due time, and the timer re-arms itself when it fires early."""

    def __init__(self, first_token: float, stall: float) -> None:
        self._first_token = first_token
        self._stall = stall
        self.streaming = False  # a delta arrived
        self.first_delta_at: float | None = None  # loop.time() of the first delta
        self._scope = asyncio.timeout(None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Watchdog:
        loop = self._loop = asyncio.get_running_loop()
        self._due = loop.time() + self._first_token
        await self._scope.__aenter__()
        self._timer = loop.call_at(self._due, self._check)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            raise self._error() from None

    def left(self) -> float:
        """Seconds until the current bound."""
        assert self._loop is not None
        return self._due - self._loop.time()

    def beat(self, delta: bool) -> None:
        """A chunk arrived (``delta``: with text or a tool call) or was handled: once the answer streams,
        the next chunk has the stall bound from now."""
        if delta or self.streaming:
            assert self._loop is not None
            if not self.streaming:
                self.first_delta_at = self._loop.time()
            self.streaming = True
            self._due = self._loop.time() + self._stall

    def _check(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if now >= self._due:
            self._timer = None
            self._scope.reschedule(now)  # expires at once: the call is cancelled, then TimeoutError
        else:
            self._timer = self._loop.call_at(self._due, self._check)

    def _error(self) -> LLMUnavailable:
        if self.streaming:
            return LLMUnavailable(
                f"The model stopped answering (nothing came for {self._stall:g} s). Please try again.",
                detail=f"stream stalled for {self._stall:g} s",
            )
        return LLMUnavailable(
            f"The model did not answer within {self._first_token:g} s. Please try again.",
            detail=f"no first token within {self._first_token:g} s",
        )
