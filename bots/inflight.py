"""The turns and commands an adapter is running, so shutdown can let them finish before the core closes.

Work is either spawned here (Slack acks first, then answers in the background) or is the current task,
tracked while it runs (discord.py runs every event handler in its own task). Spawned work is kept
referenced and its failures are logged; ``close`` gives everything a grace period, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

CANCEL_WAIT = 5.0  # seconds cancelled work gets to unwind at shutdown


class InFlight:
    """Running work of one adapter; ``platform`` names it in log lines."""

    def __init__(self, platform: str = "adapter") -> None:
        self._platform = platform
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Runs ``work`` in the background (not started once closing)."""
        if self._closed:
            work.close()
            log.info("shutting down: %s not started", name)
            return
        task = asyncio.create_task(self._guard(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Marks the current task as in flight while the block runs."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.discard(task)

    def __len__(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Waits until nothing but the caller runs; tests use it to wait for the answer to an event."""
        while others := self._others():
            await asyncio.gather(*others, return_exceptions=True)

    async def close(self, grace: float) -> None:
        """Stops spawning, lets running work finish for up to ``grace`` seconds, then cancels the rest.

        Work tracked while the drain runs (a Discord message that arrives meanwhile: the gateway stays up so
        replies can still be edited) is waited for too, within the same deadline."""
        self._closed = True
        pending = self._others()
        if not pending:
            return
        log.info("waiting up to %.0f s for %d running %s turn(s)", grace, len(pending), self._platform)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while pending and (left := deadline - loop.time()) > 0:
            await asyncio.wait(pending, timeout=left)
            pending = self._others()
        still = self._others()
        for task in still:
            task.cancel()
        if still:
            log.warning("cancelled %d unfinished %s task(s) at shutdown", len(still), self._platform)
            await asyncio.wait(still, timeout=CANCEL_WAIT)

    def _others(self) -> set[asyncio.Task[Any]]:
        current = asyncio.current_task()
        return {task for task in self._tasks if task is not current}

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s failed", name)
