"""A probe for "the event loop never blocks on what a user sends" (DESIGN.md §7) that load cannot fool.

It ticks on the loop every 10 ms and keeps, between two ticks, the most **CPU time of the loop's own thread**:
work done on the loop, which is what keeps every other user waiting. Work handed to a worker thread or process
does not count, and neither does time the loop spent waiting for a CPU another process held, so the figure
stays put when the machine is loaded, where a wall-clock gap would grow with the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

TICK = 0.01


class LoopProbe:
    """``async with LoopProbe() as probe: ...`` then ``probe.cpu`` (seconds) and ``probe.wall`` (seconds, for
    messages only: a wall gap also counts the machine's other load)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            cpu, wall = time.thread_time(), time.perf_counter()
            await asyncio.sleep(TICK)
            self.cpu = max(self.cpu, time.thread_time() - cpu)
            self.wall = max(self.wall, time.perf_counter() - wall)

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # the first tick starts before the work does
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._task is not None
        if kind is None:
            await asyncio.sleep(5 * TICK)  # the tick in progress is measured too
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def __repr__(self) -> str:
        return f"LoopProbe(cpu={self.cpu:.3f}s, wall={self.wall:.3f}s)"
