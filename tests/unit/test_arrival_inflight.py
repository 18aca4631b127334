"""Arrival order per conversation (bots/arrival.py) and the in-flight tracker (bots/inflight.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bots.arrival import Arrivals
from bots.inflight import InFlight


async def test_events_are_prepared_concurrently_and_handed_over_in_arrival_order() -> None:
    arrivals = Arrivals()
    prepared: list[str] = []
    handed: list[str] = []

    async def event(name: str, key: str, preparing: float) -> None:
        async with arrivals.arrive(key) as place:
            await asyncio.sleep(preparing)  # e.g. a download
            prepared.append(name)
            async with place:
                handed.append(name)
                await asyncio.sleep(0.01)

    await asyncio.gather(
        event("slow", "a", 0.1), event("quick", "a", 0.0), event("other", "b", 0.05), event("last", "a", 0.0)
    )
    assert prepared[:2] == ["quick", "last"]  # both prepared while "slow" was still downloading
    assert [name for name in handed if name != "other"] == ["slow", "quick", "last"]
    assert handed.index("other") < handed.index("slow")  # another conversation never waits
    assert len(arrivals) == 0


async def test_an_event_that_gives_up_early_keeps_the_ones_behind_it_in_line() -> None:
    arrivals = Arrivals()
    handed: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with arrivals.arrive("k") as place, place:
            first_in.set()
            await release.wait()
            handed.append("first")

    async def gives_up() -> None:
        with contextlib.suppress(RuntimeError):
            async with arrivals.arrive("k"):
                raise RuntimeError("could not prepare")

    async def third() -> None:
        async with arrivals.arrive("k") as place, place:
            handed.append("third")

    running = asyncio.create_task(first())
    await first_in.wait()
    others = asyncio.gather(gives_up(), third())
    await asyncio.sleep(0.02)
    assert handed == []  # the third waits for the first, not only for the one that gave up
    release.set()
    await asyncio.gather(running, others)
    assert handed == ["first", "third"]


async def test_spawned_work_is_awaited_by_idle_and_its_failure_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inflight = InFlight("Test")
    done: list[str] = []

    async def work() -> None:
        await asyncio.sleep(0.01)
        done.append("work")

    async def broken() -> None:
        raise ValueError("boom")

    inflight.spawn(work(), name="work")
    inflight.spawn(broken(), name="broken")
    await inflight.idle()
    assert done == ["work"] and len(inflight) == 0
    assert "task broken failed" in caplog.text


async def test_close_waits_for_the_grace_period_then_cancels_and_refuses_new_work() -> None:
    inflight = InFlight("Test")
    finished: list[str] = []
    cancelled: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def hanging() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append("hanging")
            raise

    async def tracked() -> None:
        with inflight.track():
            await asyncio.sleep(0.01)
            finished.append("tracked")

    inflight.spawn(quick(), name="quick")
    inflight.spawn(hanging(), name="hanging")
    handler = asyncio.create_task(tracked())
    await asyncio.sleep(0)
    await inflight.close(0.1)
    assert sorted(finished) == ["quick", "tracked"] and cancelled == ["hanging"]
    inflight.spawn(quick(), name="late")
    assert len(inflight) == 0
    await handler


async def test_close_also_waits_for_work_that_arrives_while_it_drains() -> None:
    inflight = InFlight("Test")
    finished: list[str] = []

    async def handler(name: str, seconds: float) -> None:
        with inflight.track():
            await asyncio.sleep(seconds)
            finished.append(name)

    first = asyncio.create_task(handler("first", 0.05))
    await asyncio.sleep(0)
    closing = asyncio.create_task(inflight.close(5.0))
    await asyncio.sleep(0.01)
    late = asyncio.create_task(handler("late", 0.1))  # e.g. a Discord message during the drain
    await closing
    assert finished == ["first", "late"]
    await asyncio.gather(first, late)


async def test_a_place_knows_whether_anything_ahead_is_still_running() -> None:
    arrivals = Arrivals()
    async with arrivals.arrive("k") as one:
        assert one.first
        async with arrivals.arrive("k") as two, arrivals.arrive("other") as elsewhere:
            assert not two.first and elsewhere.first
    async with arrivals.arrive("k") as three:
        assert three.first
