"""The load side of the Slack benchmarks (lean.py, slack_overhead.py): what drives a system under test (SUT)
the same way in both.

- ``bench_slack_class``: the Slack fake, which also times when a thread's reply shows its final text;
- ``Load``: one timed mention (event POST -> final ``chat.update`` in the fake), and closed-loop blocks of
  them, with the SUT's CPU time read from /proc around each block (``Phase`` sums them);
- the children's environment, pinning, stopping, and the report's number formats.

Nothing here asserts anything: the scripts print what was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import itertools
import math
import os
import platform
import signal
import socket
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
TURN_TIMEOUT = 30.0  # seconds a timed turn may take before the run stops with the SUT's log
STOP_TIMEOUT = 20.0

# Inherited settings that would change what is measured are dropped from the children's environment.
_SETTING_PREFIXES = ("THREADWISE_", "SLACK_", "OPENAI_", "DISCORD_")
_SETTING_NAMES = ("DATABASE_URL", "REDIS_URL", "PORT")


class Target(Protocol):
    """A running SUT as the load sees it."""

    @property
    def name(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def log_path(self) -> Path: ...
    @property
    def process(self) -> asyncio.subprocess.Process: ...


@dataclass(slots=True)
class Phase:
    """Timed turns of one SUT, summed over its blocks."""

    latencies: list[float] = field(default_factory=list)  # seconds, event POST -> final text seen
    wall: float = 0.0
    sut_cpu: float = 0.0
    driver_cpu: float = 0.0
    slack_calls: int = 0
    openai_calls: int = 0
    chat_requests: int = 0
    chat_messages: int = 0  # messages in those requests (system + history + the new one)

    @property
    def turns(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.turns / self.wall if self.wall else 0.0

    @property
    def cpu_per_turn(self) -> float:
        return self.sut_cpu / self.turns if self.turns else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads), or None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` (VmRSS), in MB, or None without /proc."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_slack_class() -> type:
    """FakeSlack that resolves a waiter when a thread's reply shows its final text, and finds messages by
    (channel, ts) in O(1) (the plain fake scans every message it holds)."""
    from tests.fakes.slack_api import FakeSlack, PostedMessage

    class BenchSlack(FakeSlack):
        def __init__(self) -> None:
            super().__init__()
            self.index: dict[tuple[str, str], PostedMessage] = {}
            # thread ts -> (expected final text, future receiving (perf_counter, text))
            self.waiters: dict[str, tuple[str, asyncio.Future[tuple[float, str]]]] = {}

        def _m_chat_postMessage(self, args: dict[str, Any], call: Any) -> dict[str, Any]:
            body: dict[str, Any] = super()._m_chat_postMessage(args, call)
            if body.get("ok"):
                message = self.messages[-1]
                self.index[(message.channel, message.ts)] = message
            return body

        def _find(self, channel: str, ts: str) -> PostedMessage | None:
            message = self.index.get((channel, ts))
            return None if message is None or message.deleted else message

        def _m_chat_update(self, args: dict[str, Any], call: Any) -> dict[str, Any]:
            body: dict[str, Any] = super()._m_chat_update(args, call)
            if body.get("ok"):
                message = self.index[(str(args.get("channel")), str(args.get("ts")))]
                waiter = self.waiters.get(message.thread_ts or "")
                text = str(body.get("text"))
                if waiter is not None and not waiter[1].done() and (text == waiter[0] or ":warning:" in text):
                    waiter[1].set_result((time.perf_counter(), text))
            return body

        def forget(self) -> None:
            """Drops what the fake has recorded (bounded memory over a long run)."""
            self.calls.clear()
            self.messages.clear()
            self.index.clear()

    return BenchSlack


class Load:
    """Plays Slack against SUTs: signed mentions from ``users``, each answered by the OpenAI fake's echo."""

    def __init__(self, slack: Any, openai: Any, session: Any, users: list[str]) -> None:
        self.slack, self.openai, self.session, self.users = slack, openai, session, users
        self.numbers = itertools.count(1)

    def sender(self, target: Target) -> Any:
        from tests.fakes.slack_api import EventSender

        return EventSender(f"http://127.0.0.1:{target.port}/slack/events", self.session)

    async def turn(
        self, target: Target, sender: Any, user: str, *, channel: str, thread_ts: str | None = None
    ) -> float:
        """One mention answered (in ``thread_ts``, else in the new thread it starts); seconds from the event
        POST to the final text in Slack."""
        from tests.fakes.slack_api import BOT_USER_ID

        text = f"ping {next(self.numbers)}"
        event = self.slack.message_event(
            f"<@{BOT_USER_ID}> {text}", mention=True, channel=channel, user=user, thread_ts=thread_ts
        )
        key = thread_ts or str(event["ts"])
        future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
        expected = f"echo: {text}"
        self.slack.waiters[key] = (expected, future)
        try:
            started = time.perf_counter()
            delivery = await sender.event(self.slack.envelope(event))
            if delivery.status != 200:
                raise RuntimeError(f"{target.name}: event answered {delivery.status} {delivery.body[:200]}")
            try:
                done, shown = await asyncio.wait_for(future, TURN_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(
                    f"{target.name}: no answer to {text!r} within {TURN_TIMEOUT:.0f} s; its log ends:\n"
                    f"{log_tail(target.log_path)}"
                ) from None
        finally:
            self.slack.waiters.pop(key, None)
        if shown != expected:
            raise RuntimeError(f"{target.name}: turn {text!r} answered {shown!r}")
        return done - started

    async def block(
        self,
        target: Target,
        turns: int,
        concurrency: int,
        turn: Callable[[int, int], Awaitable[float]],
        record: Phase | None,
        *,
        max_seconds: float | None = None,
        min_turns: int = 5,
    ) -> int:
        """``turns`` turns from ``concurrency`` closed-loop clients, ``turn(client, number)`` each (number:
        0, 1, … in the order they begin); with ``max_seconds``, no turn begins after that once
        ``min_turns`` (and one per client) have. Measurements are added to ``record``; returns how many
        turns were served."""
        latencies: list[float] = []
        begun = 0
        at_least = min(turns, max(min_turns, concurrency))
        started = 0.0

        def another() -> int | None:
            nonlocal begun
            late = max_seconds is not None and time.perf_counter() - started > max_seconds
            if begun >= turns or (begun >= at_least and late):
                return None
            begun += 1
            return begun - 1

        async def client(index: int) -> None:
            while (number := another()) is not None:
                latencies.append(await turn(index, number))

        self.slack.forget()
        self.openai.requests.clear()
        await asyncio.sleep(0.05)  # the SUT finishes the previous block's last turns (persisting) first
        sut_before, driver_before = cpu_seconds(target.process.pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client(index) for index in range(concurrency)))
        wall = time.perf_counter() - started
        driver_after = time.process_time()
        await asyncio.sleep(0.05)  # ... and this block's, before its CPU time is read
        sut_after = cpu_seconds(target.process.pid)
        if record is not None:
            record.latencies += latencies
            record.wall += wall
            record.driver_cpu += driver_after - driver_before
            if sut_before is not None and sut_after is not None:
                record.sut_cpu += sut_after - sut_before
            record.slack_calls += sum(1 for call in self.slack.calls if call.method != "users.info")
            record.openai_calls += len(self.openai.requests)
            for body in self.openai.chat_requests():
                record.chat_requests += 1
                record.chat_messages += len(body.get("messages") or ())
        return len(latencies)


def child_env(*, openai_url: str, slack_url: str, database: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A SUT's environment: this one without inherited settings, the fakes' URLs and credentials, SQLite at
    ``database``, the repository importable, then ``extra``."""
    from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SETTING_PREFIXES) and key not in _SETTING_NAMES
    }
    env |= {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": openai_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH")))),
    }
    return env | dict(extra)


def pin(no_pin: bool) -> tuple[int | None, str]:
    """With 2+ CPUs (and not ``no_pin``): this process (the driver: fakes + load) moves off the first CPU,
    which is the SUTs'; returns that CPU and a sentence saying how the run was pinned."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if no_pin or len(cpus) < 2:
        return (
            None,
            f"Not pinned ({len(cpus) or 'unknown'} CPU(s) usable): SUTs and driver shared the CPU(s).",
        )
    os.sched_setaffinity(0, set(cpus[1:]))  # before the event loop starts any thread
    return cpus[0], f"Each SUT was pinned to CPU {cpus[0]}, the driver (fakes + load) to CPU(s) {cpus[1:]}."


def prepare() -> None:
    """The repository importable, and tiktoken's cache at ``../shared/tiktoken`` unless one is set."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    candidate = REPO.parent / "shared" / "tiktoken"
    if candidate.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(candidate)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def stop(target: Target) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT seconds."""
    process = target.process
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    if process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        print(f"  {target.name} did not stop within {STOP_TIMEOUT:.0f} s: killed", file=sys.stderr)
        process.kill()
        await process.wait()


def versions() -> str:
    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    for package in ("slack_bolt", "slack_sdk", "openai", "aiohttp", "SQLAlchemy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{package} {importlib.metadata.version(package)}")
    return ", ".join(parts)


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def ratio(value: float | None, floor: float | None) -> str:
    return f"x{value / floor:.2f}" if value is not None and floor else "-"
