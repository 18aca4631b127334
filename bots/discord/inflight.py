"""The turns and commands running right now, so shutdown can let them finish before the core closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


class InFlight:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Marks the current task (discord.py runs every event handler in its own task) as in flight."""
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

    async def drain(self, grace: float) -> None:
        """Waits up to ``grace`` seconds for running work, then cancels what is left."""
        pending = {task for task in self._tasks if task is not asyncio.current_task()}
        if not pending:
            return
        log.info("waiting up to %.0f s for %d running Discord turn(s)", grace, len(pending))
        _done, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=5)
