"""A turn waiting for a person (a tool approval): the wait does not count against THREADWISE_TURN_TIMEOUT, but
it is bounded by what the wait may take."""

from __future__ import annotations

import asyncio

import pytest

from core.domain.errors import TurnTimedOut
from core.turn.deadline import TurnDeadline


async def test_a_wait_for_a_person_does_not_use_up_the_turns_time() -> None:
    async with TurnDeadline(0.3) as deadline:
        with deadline.paused(5.0):
            await asyncio.sleep(0.6)  # twice the turn's whole time
        assert deadline.when is not None and deadline.when > asyncio.get_running_loop().time()
        await asyncio.sleep(0.05)  # the turn goes on with the time it had left


async def test_overlapping_waits_count_once_and_the_turn_still_ends_after() -> None:
    with pytest.raises(TurnTimedOut):
        async with TurnDeadline(0.2) as deadline:

            async def wait(seconds: float) -> None:
                with deadline.paused(5.0):
                    await asyncio.sleep(seconds)

            await asyncio.gather(wait(0.3), wait(0.5))
            await asyncio.sleep(5)  # past the time it had left: the deadline still applies


async def test_a_wait_is_bounded_by_what_it_may_take() -> None:
    with pytest.raises(TurnTimedOut):
        async with TurnDeadline(0.1) as deadline:
            with deadline.paused(0.1):
                await asyncio.sleep(5)


async def test_without_a_turn_timeout_a_pause_changes_nothing() -> None:
    async with TurnDeadline(None) as deadline:
        with deadline.paused(0.1):
            await asyncio.sleep(0.2)
        assert deadline.when is None
