"""Turns of one conversation run one at a time in arrival order; different conversations never wait."""

from __future__ import annotations

import asyncio

import pytest

from core.turn.ordering import KeyedLocks

GUARD_SECONDS = 5  # only a deadlock guard: every test finishes without waiting on time


async def test_one_key_runs_strictly_in_creation_order() -> None:
    locks = KeyedLocks()
    log: list[tuple[str, int]] = []

    async def turn(index: int) -> None:
        async with locks.hold("conversation-1"):
            log.append(("start", index))
            await asyncio.sleep(0)
            log.append(("middle", index))
            await asyncio.sleep(0)
            log.append(("end", index))

    tasks = [asyncio.create_task(turn(index)) for index in range(20)]
    async with asyncio.timeout(GUARD_SECONDS):
        await asyncio.gather(*tasks)

    assert log == [(step, index) for index in range(20) for step in ("start", "middle", "end")]
    assert len(locks) == 0


async def test_different_keys_overlap() -> None:
    locks = KeyedLocks()
    a_inside = asyncio.Event()
    b_inside = asyncio.Event()
    both_held: list[int] = []

    async def turn(key: str, mine: asyncio.Event, other: asyncio.Event) -> None:
        async with locks.hold(key):
            mine.set()
            # Only returns if the other key's holder got in while this one still holds its lock.
            await other.wait()
            both_held.append(len(locks))

    async with asyncio.timeout(GUARD_SECONDS):
        await asyncio.gather(turn("a", a_inside, b_inside), turn("b", b_inside, a_inside))

    # Both got past their wait, and the first to do so saw both keys held at once.
    assert len(both_held) == 2
    assert both_held[0] == 2
    assert len(locks) == 0


async def test_same_key_does_not_overlap() -> None:
    locks = KeyedLocks()
    first_inside = asyncio.Event()
    release_first = asyncio.Event()
    second_inside = asyncio.Event()

    async def first() -> None:
        async with locks.hold("k"):
            first_inside.set()
            await release_first.wait()

    async def second() -> None:
        async with locks.hold("k"):
            second_inside.set()

    async with asyncio.timeout(GUARD_SECONDS):
        task_1 = asyncio.create_task(first())
        await first_inside.wait()
        task_2 = asyncio.create_task(second())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not second_inside.is_set()
        assert len(locks) == 1
        release_first.set()
        await asyncio.gather(task_1, task_2)

    assert second_inside.is_set()
    assert len(locks) == 0


async def test_no_lock_left_after_a_holder_raised() -> None:
    locks = KeyedLocks()
    ran: list[int] = []

    async def failing() -> None:
        async with locks.hold("k"):
            ran.append(0)
            await asyncio.sleep(0)
            raise RuntimeError("turn failed")

    async def next_turn(index: int) -> None:
        async with locks.hold("k"):
            ran.append(index)

    async with asyncio.timeout(GUARD_SECONDS):
        results = await asyncio.gather(failing(), next_turn(1), next_turn(2), return_exceptions=True)

    assert isinstance(results[0], RuntimeError)
    assert results[1:] == [None, None]
    # The failure did not stop the turns queued behind it, nor reorder them.
    assert ran == [0, 1, 2]
    assert len(locks) == 0


async def test_no_lock_left_after_a_lone_holder_raised() -> None:
    locks = KeyedLocks()

    with pytest.raises(ValueError, match="boom"):
        async with locks.hold(("slack", "T1")):
            assert len(locks) == 1
            raise ValueError("boom")

    assert len(locks) == 0


async def test_no_lock_left_after_a_waiter_was_cancelled() -> None:
    locks = KeyedLocks()
    holder_inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            holder_inside.set()
            await release.wait()

    async def waiter() -> None:
        async with locks.hold("k"):
            raise AssertionError("a cancelled waiter must not run")

    async with asyncio.timeout(GUARD_SECONDS):
        holding = asyncio.create_task(holder())
        await holder_inside.wait()
        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await holding

    assert len(locks) == 0
    # The key still works afterwards.
    async with locks.hold("k"):
        assert len(locks) == 1
    assert len(locks) == 0
