"""Stopping a running turn (the Stop button): each turn this process runs has a ``StopSignal``, found by its
claim id in ``RunningTurns``. The tool loop races the model's stream against it: a stopped stream is closed
at once and the turn finishes with what was streamed. Pure asyncio; how a stop reaches the replica running
the turn is core/answers/stops.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class StopSignal:
    """One running turn's stop: set once, by whom (a display name shown in the answer's note)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.by: str | None = None

    def stop(self, by: str) -> None:
        if not self._event.is_set():
            self.by = by
            self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class RunningTurns:
    """The turns this process runs now, by claim id (a processed_events row id)."""

    def __init__(self) -> None:
        self._turns: dict[int, StopSignal] = {}

    @contextlib.contextmanager
    def running(self, claim_id: int) -> Iterator[StopSignal]:
        signal = self._turns.setdefault(claim_id, StopSignal())
        try:
            yield signal
        finally:
            if self._turns.get(claim_id) is signal:
                del self._turns[claim_id]

    def stop(self, claim_id: int, by: str) -> bool:
        """Stop the turn of ``claim_id`` if this process runs it; False: not here."""
        signal = self._turns.get(claim_id)
        if signal is None:
            return False
        signal.stop(by)
        return True
