"""At most a few of one user's messages download files at a time; other users are not held up."""

from __future__ import annotations

import asyncio

from bots.downloads import DownloadSlots


async def test_one_user_downloads_at_most_two_at_a_time_and_others_are_not_held_up() -> None:
    slots = DownloadSlots(per_user=2)
    release = asyncio.Event()
    running: dict[str, int] = {"U1": 0, "U2": 0}
    most: dict[str, int] = {"U1": 0, "U2": 0}

    async def download(user: str) -> None:
        async with slots.slot(user):
            running[user] += 1
            most[user] = max(most[user], running[user])
            await release.wait()
            running[user] -= 1

    tasks = [asyncio.create_task(download("U1")) for _ in range(5)]
    tasks.append(asyncio.create_task(download("U2")))
    for _ in range(10):
        await asyncio.sleep(0)
    assert running == {"U1": 2, "U2": 1}
    release.set()
    await asyncio.gather(*tasks)
    assert most == {"U1": 2, "U2": 1}
    assert len(slots) == 0  # nothing kept for users who are done
