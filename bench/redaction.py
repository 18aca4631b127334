"""What does redacting 100 KB of mixed text cost?

Three 100 KB texts, each a mix of prose, code, numbers, e-mail addresses and keys: plain ASCII; with emoji and
non-Latin scripts (CJK, Cyrillic, Arabic); and with full-width e-mail addresses and zero-width characters
inside keys (the normalised path). Prints the median of N runs per text, in milliseconds, and how many
redactions each run made. Then, for the last text at 100 KB and 1 MB: the longest the event loop went without
running (a 1 ms ticker) while the text was redacted with ``redact`` on the loop and with ``redact_off_loop``
(``core/guards/redaction.py``: a worker thread), and their ratio. Nothing is asserted.

Run from the repository root:  python -m bench.redaction [--reps 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from core.guards.redaction import redact_off_loop
from core.guards.redactor import Redactor

KEY = "sk-" + "proj-" + "Ab3_" * 10
BLOCK = (
    "Deploy notes for 2026-11-22: contact jane.doe@example.com or call +1 415 555 2671. "
    f"The staging key is {KEY}; rotate it.\n"
    "def backoff(attempt: int) -> float:\n    return min(2 ** attempt, 30) * 1.5e-3  # port 8080\n"
    "Order 123456789 shipped from 192.168.1.10, build 1.2.3-rc.1, sha 9fceb02d0ae598e95dc970b7.\n"
)
UNICODE = "Réunion à 10:30 🎉👍🏽 会议记录：请查看附件。Привет, мир! مرحبا بالعالم — naïve café ✅\n"
TRICKS = f"mail ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ and sk-\u200bproj-{'Ab3_' * 10} and ada\u2060@example.com\n"


def filled(*parts: str, size: int = 100_000) -> str:
    unit = "".join(parts)
    return (unit * (size // len(unit) + 1))[:size]


def measure(redactor: Redactor, text: str, reps: int) -> tuple[float, int]:
    times = []
    found = 0
    for _ in range(reps):
        started = time.perf_counter()
        result = redactor.redact(text)
        times.append(time.perf_counter() - started)
        found = sum(r.count for r in result.redactions)
    return statistics.median(times) * 1000, found


async def longest_stall(redactor: Redactor, text: str, *, off_loop: bool) -> float:
    """Milliseconds of the longest gap between two ticks of a 1 ms ticker while ``text`` is redacted."""
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            longest = max(longest, time.perf_counter() - before)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    if off_loop:
        await redact_off_loop(redactor, text)
    else:
        redactor.redact(text)
    await asyncio.sleep(0.01)
    ticking.cancel()
    return longest * 1000


async def stalls(redactor: Redactor, text: str, reps: int) -> None:
    for size in (100_000, 1_000_000):
        sample = filled(text, size=size)
        on = statistics.median([await longest_stall(redactor, sample, off_loop=False) for _ in range(reps)])
        off = statistics.median([await longest_stall(redactor, sample, off_loop=True) for _ in range(reps)])
        print(
            f"loop stall, {size // 1000:>5} kB: on the loop {on:7.2f} ms, off the loop {off:6.2f} ms "
            f"(x{on / off:.1f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    redactor = Redactor()
    texts = {
        "ascii": filled(BLOCK),
        "emoji + scripts": filled(BLOCK, UNICODE),
        "full-width + zero-width": filled(BLOCK, UNICODE, TRICKS),
    }
    for name, text in texts.items():
        millis, found = measure(redactor, text, args.reps)
        size = len(text.encode("utf-8")) / 1000
        print(f"{name:>24}: {size:6.1f} kB UTF-8  {millis:7.2f} ms  {found} redactions")
    asyncio.run(stalls(redactor, texts["full-width + zero-width"], max(3, args.reps // 6)))


if __name__ == "__main__":
    main()
