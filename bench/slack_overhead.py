"""What does Threadwise add to a minimal Slack relay doing the same wire calls?

DESIGN.md §7: "the service adds little to a minimal relay (event in -> model call -> message out) doing the
same wire calls; turn cost independent of history length; hundreds of turns/s on one core with SQLite".

Two processes. The driver (this process) runs the loopback fakes of Slack and OpenAI (tests/fakes) and
plays Slack: it POSTs signed ``app_mention`` events to the system under test and times each turn from the
event POST until the fake Slack receives the ``chat.update`` that shows the final answer (and the event
was acked). Each system under test (SUT) is a child process of this script (``--serve``), so it does not
share an event loop, the GIL or, with 2+ CPUs, a core with the fakes: the SUTs are pinned to one CPU and
the driver to the others. The SUTs are:

  relay       a hand-written aiohttp handler: verify the signature, ack, then slack_sdk AsyncWebClient
              chat.postMessage (placeholder), openai AsyncOpenAI streamed chat completion (system prompt +
              the message, no history), chat.update with the answer. No database, history or budgets.
  threadwise  the real adapter as ``threadwise serve`` composes it: ``open_core(load_settings(None))`` +
              ``open_slack`` on the ``HttpServer`` (HTTP events mode), SQLite in a temp dir, settings from
              the environment with the defaults except as the variant says. Every Threadwise variant sets
              THREADWISE_USER_DAILY_BUDGET_USD=1000 (so every turn reserves and settles a user budget) and
              THREADWISE_USER_RATE_LIMIT=1000000/minute (the limiter runs on every turn, but the default
              20/minute per user would throttle a benchmark). Tools stay on (their definitions are sent).

The fake model answers at once with a short echo ("echo: ping 17"), so what is timed is the service's own
work plus loopback HTTP. All SUTs start first; each gets ``--warmup`` untimed turns; then, in ``--rounds``
rounds that rotate through the variants (so every ratio comes from the same conditions of this one run),
a sequential phase (one turn at a time, each in a new thread) and a concurrent phase (``--concurrency``
closed-loop clients, each starting its next turn as soon as its last answer is visible). A phase of one
round starts no new turn after ``--max-seconds`` (the table's n says how many were timed), which bounds
the run when a variant is slow. Turns/s is turns / wall time of the phases; SUT CPU is the child process's
user+system time (all its threads) per concurrent turn, read from /proc.

The history variants mention the bot in existing threads of ``--history`` stored messages, one thread per
concurrent client (the sequential phase rotates through them). They are seeded in the SUT before it
serves, with the repository and a bulk insert as bench/context_cost.py does (alternating user/assistant
messages of 20-60 words): running that many turns would take longer than the benchmark. A turn adds two
messages, so the threads grow a little during the run. "cap 8k" sets THREADWISE_HISTORY_MAX_TOKENS=8000;
"full" keeps the default (the whole thread, up to the model's window, is sent to the model).

Nothing is asserted about absolute times. Run from the repository root with the virtualenv active:

    python bench/slack_overhead.py [--turns N] [--concurrency N] [--rounds N] [--warmup N]
                                   [--max-seconds S] [--history N] [--no-pin]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import json
import logging
import math
import os
import platform
import random
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]

MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = (
    "You are Threadwise, a helpful assistant in a team chat. Answer concisely and use Markdown sparingly."
)
PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
CHANNEL = "C0BENCH"
HISTORY_CHANNEL = "C0HISTORY"
HISTORY_CAP = 8_000
TURN_TIMEOUT = 30.0
STALL = 0.5  # seconds: a median turn this slow with a zero-delay model is waiting, not working
MIN_TURNS = 5  # a phase that hits --max-seconds still times this many turns (and one per client)
STARTUP_TIMEOUT = 180.0
SEED = 20240611
INSERT_BATCH = 2_000

# What every Threadwise variant sets on top of the defaults (see the module docstring).
THREADWISE_COMMON = {
    "THREADWISE_USER_DAILY_BUDGET_USD": "1000",
    "THREADWISE_USER_RATE_LIMIT": "1000000/minute",
}
# Inherited settings that would change what is measured are dropped from the children's environment.
_SETTING_PREFIXES = ("THREADWISE_", "SLACK_", "OPENAI_", "DISCORD_")
_SETTING_NAMES = ("DATABASE_URL", "REDIS_URL", "PORT")


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    kind: str  # "relay" or "threadwise"
    env: dict[str, str] = field(default_factory=dict)  # on top of THREADWISE_COMMON (threadwise only)
    history: bool = False  # turns go to existing threads of --history messages


VARIANTS = (
    Variant("relay (floor)", "relay"),
    Variant("threadwise, moderation off", "threadwise", {"THREADWISE_MODERATION": "false"}),
    Variant("threadwise, defaults (mod on)", "threadwise"),
    Variant(
        "tw mod off, {history} msgs, cap 8k",
        "threadwise",
        {"THREADWISE_MODERATION": "false", "THREADWISE_HISTORY_MAX_TOKENS": str(HISTORY_CAP)},
        history=True,
    ),
    Variant("tw mod off, {history} msgs, full", "threadwise", {"THREADWISE_MODERATION": "false"}, True),
)


def _ensure_repo_importable() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _default_tiktoken_cache() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    candidate = REPO.parent / "shared" / "tiktoken"
    if candidate.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(candidate)


def history_thread_ts(index: int) -> str:
    # Below the fake's own ts values (1_700_000_000 + n), so never one of its messages.
    return f"1600000000.{index + 1:06d}"


# ============================================================================================= the SUT side


def _pin_self(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _announce(port: int, **extra: Any) -> None:
    print(json.dumps({"port": port, **extra}), flush=True)


async def _until_stopped() -> None:
    """Until SIGTERM/SIGINT, or until the driver goes away (stdin closes)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        await reader.read()
        stop.set()

    watcher = asyncio.create_task(watch_stdin())
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        transport.close()


def _configure_logging(level: str) -> None:
    # As `threadwise serve` does (bots/__main__.py main); the driver sends stderr to a file.
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for chatty in ("alembic", "matplotlib"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


async def serve_relay() -> None:
    """The floor: the same wire calls as a Threadwise turn, and nothing else."""
    import aiohttp
    from aiohttp import web
    from openai import AsyncOpenAI
    from slack_sdk.signature import SignatureVerifier
    from slack_sdk.web.async_client import AsyncWebClient

    _configure_logging("INFO")
    log = logging.getLogger("relay")
    env = os.environ
    mention = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>\s*")
    verifier = SignatureVerifier(env["SLACK_SIGNING_SECRET"])
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as session:
        slack = AsyncWebClient(token=env["SLACK_BOT_TOKEN"], base_url=env["SLACK_API_URL"], session=session)
        llm = AsyncOpenAI(api_key=env["OPENAI_API_KEY"], base_url=env["OPENAI_BASE_URL"])

        async def answer(event: dict[str, Any]) -> None:
            try:
                channel = str(event["channel"])
                thread = str(event.get("thread_ts") or event["ts"])
                text = mention.sub("", str(event.get("text") or "")).strip()
                posted = await slack.chat_postMessage(channel=channel, thread_ts=thread, text=PLACEHOLDER)
                stream = await llm.chat.completions.create(
                    model=MODEL,
                    messages=[
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": text},
                    ],
                    stream=True,
                    stream_options={"include_usage": True},
                    max_completion_tokens=1024,
                )
                parts: list[str] = []
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                await slack.chat_update(channel=channel, ts=str(posted["ts"]), text="".join(parts))
            except Exception:
                log.exception("relay turn failed")

        async def events(request: web.Request) -> web.Response:
            body = await request.text()
            headers = request.headers
            if not verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            ):
                return web.Response(status=401)
            payload = json.loads(body)
            event = payload.get("event") or {}
            if payload.get("type") == "event_callback" and event.get("type") == "app_mention":
                task = asyncio.create_task(answer(event))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            return web.Response()

        app = web.Application()
        app.router.add_post("/slack/events", events)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            _announce(int(runner.addresses[0][1]))
            await _until_stopped()
        finally:
            await runner.cleanup()
            await asyncio.gather(*tasks, return_exceptions=True)
            await llm.close()


_VOCABULARY = (
    "the a we it this that our your their team service deploy release build test query index table cache "
    "window thread message reply model token budget latency request response error retry timeout queue "
    "worker database migration schema column row page cursor limit offset user admin channel workspace "
    "config setting value default option flag feature branch merge review commit patch version update "
    "should could would might will can need want think know see check run try fix add remove keep move "
    "because so but and or if when while after before then now still already again also just only "
    "today tomorrow yesterday morning afternoon week sprint meeting customer incident dashboard metric"
)
_WORDS = tuple(_VOCABULARY.split())


def _chat_text(rng: random.Random) -> str:
    """20-60 words in sentences of 5-14 words (as bench/context_cost.py seeds)."""
    target, written, sentences = rng.randint(20, 60), 0, []
    while written < target:
        length = max(1, min(rng.randint(5, 14), target - written))
        words = " ".join(rng.choices(_WORDS, k=length))
        sentences.append(words[0].upper() + words[1:] + rng.choice((".", ".", "?", "!")))
        written += length
    return " ".join(sentences)


async def seed_history(core: Any, threads: int, messages: int, users: Sequence[str]) -> dict[str, int]:
    """``threads`` Slack threads in HISTORY_CHANNEL of ``messages`` stored messages each."""
    from sqlalchemy import insert

    from bots.slack.identity import PLATFORM
    from core.db.models import Message
    from core.db.repositories import ConversationRepository
    from core.domain.types import ConversationKey
    from core.turn.history import wire_message
    from tests.fakes.slack_api import TEAM_ID

    table = Message.metadata.tables["messages"]
    counter = core.counter
    encoding = counter.encoding_for(MODEL)
    rng = random.Random(SEED)
    start = datetime.now(UTC) - timedelta(days=30)
    tokens = 0
    for thread in range(threads):
        key = ConversationKey(PLATFORM, TEAM_ID, HISTORY_CHANNEL, history_thread_ts(thread))
        async with core.database.unit_of_work() as session:
            conversation = await ConversationRepository(session).get_or_create(key)
            rows: list[dict[str, Any]] = []
            for index in range(messages):
                role = "user" if index % 2 == 0 else "assistant"
                parts = [{"type": "text", "text": _chat_text(rng)}]
                count = counter.count_message(MODEL, wire_message(role, parts), [])
                tokens += count
                rows.append(
                    {
                        "conversation_id": conversation.id,
                        "role": role,
                        "content": parts,
                        "tool_calls": None,
                        "tool_call_id": None,
                        "model": MODEL if role == "assistant" else None,
                        "token_count": count,
                        "token_encoding": encoding,
                        "status": "ok",
                        "user_id": users[thread % len(users)] if role == "user" else None,
                        "event_id": f"{HISTORY_CHANNEL}:seed-{thread}-{index}" if role == "user" else None,
                        "created_at": start + timedelta(seconds=index),
                    }
                )
            for offset in range(0, len(rows), INSERT_BATCH):
                await session.execute(insert(table), rows[offset : offset + INSERT_BATCH])
    return {
        "seeded_threads": threads,
        "seeded_messages": messages,
        "tokens_per_thread": tokens // max(threads, 1),
    }


async def serve_threadwise(seed_threads: int, seed_messages: int, users: Sequence[str]) -> None:
    """The real adapter, composed as `threadwise serve` composes it (HTTP events mode)."""
    from bots.bootstrap import open_core
    from bots.http import HttpServer
    from bots.slack.app import open_slack
    from bots.slack.config import SlackOptions
    from core.settings import load_settings

    settings = load_settings(None)
    _configure_logging(settings.threadwise.log_level)
    async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
        extra = await seed_history(core, seed_threads, seed_messages, users) if seed_threads else {}
        http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
        await stack.enter_async_context(open_slack(core.chat, SlackOptions.from_settings(settings), http))
        await stack.enter_async_context(http)
        http.ready = True
        _announce(http.port, **extra)
        await _until_stopped()


def serve(args: argparse.Namespace) -> int:
    _pin_self(args.cpu)
    _ensure_repo_importable()
    users = [user for user in args.users.split(",") if user]
    if args.serve == "relay":
        asyncio.run(serve_relay())
    else:
        asyncio.run(serve_threadwise(args.seed_threads, args.seed_messages, users))
    return 0


# ============================================================================================= the driver


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads), or None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Phase:
    """Measurements of one phase of one variant, summed over the rounds."""

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

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)


@dataclass(slots=True)
class Running:
    variant: Variant
    name: str
    process: asyncio.subprocess.Process
    port: int
    log_path: Path
    info: dict[str, Any]
    log_from: int = 0
    sequential: Phase = field(default_factory=Phase)
    concurrent: Phase = field(default_factory=Phase)


def _bench_slack_class() -> type:
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


class Driver:
    def __init__(self, args: argparse.Namespace, workdir: Path, sut_cpu: int | None) -> None:
        self.args = args
        self.workdir = workdir
        self.sut_cpu = sut_cpu
        self.numbers = itertools.count(1)
        self.users = [f"U0B{index:04d}" for index in range(args.concurrency)]
        self.running: list[Running] = []

    async def run(self) -> list[Running]:
        import aiohttp

        from tests.fakes.openai_api import FakeOpenAI

        args = self.args
        async with (
            FakeOpenAI() as openai_fake,
            _bench_slack_class()() as slack_fake,
            contextlib.AsyncExitStack() as stack,
        ):
            self.openai, self.slack = openai_fake, slack_fake
            for user in self.users:
                slack_fake.add_user(user, f"bench{user[-4:]}")
            stack.push_async_callback(self.stop_all)
            connector = aiohttp.TCPConnector(limit=0)
            self.session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            for variant in VARIANTS:
                started = await self.start(variant)
                print(f"  started {started.name}", file=sys.stderr, flush=True)
            for running in self.running:
                await self.phase(running, args.warmup, args.concurrency, record=None)
            print("  warmed up; measuring", file=sys.stderr, flush=True)
            per_round = max(1, math.ceil(args.turns / args.rounds))
            for number in range(args.rounds):
                shift = number % len(self.running)
                for running in (*self.running[shift:], *self.running[:shift]):
                    await self.phase(running, per_round, 1, record=running.sequential)
                    await self.phase(running, per_round, args.concurrency, record=running.concurrent)
                print(f"  round {number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        return self.running

    async def start(self, variant: Variant) -> Running:
        name = variant.name.format(history=f"{self.args.history:,}")
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET

        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_SETTING_PREFIXES) and key not in _SETTING_NAMES
        }
        env |= {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": self.openai.base_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / (slug + '.db')}",
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH")))),
        }
        if variant.kind == "threadwise":
            env |= THREADWISE_COMMON | variant.env
        command = [sys.executable, str(SCRIPT), "--serve", variant.kind]
        command += ["--users", ",".join(self.users)]
        if self.sut_cpu is not None:
            command += ["--cpu", str(self.sut_cpu)]
        if variant.history:
            command += [
                "--seed-threads",
                str(self.args.concurrency),
                "--seed-messages",
                str(self.args.history),
            ]
        log_path = self.workdir / f"{slug}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env=env,
                cwd=str(self.workdir),
            )
        running = Running(variant, name, process, 0, log_path, {})
        self.running.append(running)  # from now on stopped with the others, however the run ends
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
        except TimeoutError:
            line = b""
        if not line:
            await self.stop(running)
            raise RuntimeError(f"{name} did not start:\n{self.log_tail(log_path)}")
        running.info = json.loads(line)
        running.log_from = log_path.stat().st_size  # start-up notices are not what this run is about
        running.port = int(running.info["port"])
        return running

    @staticmethod
    def log_tail(path: Path, lines: int = 30) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self, running: Running) -> None:
        process = running.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                print(f"  {running.name} did not stop within 20 s: killed", file=sys.stderr)
                process.kill()
                await process.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(running) for running in self.running))

    async def phase(self, running: Running, turns: int, concurrency: int, *, record: Phase | None) -> None:
        """``turns`` turns from ``concurrency`` closed-loop clients; measurements added to ``record``."""
        from tests.fakes.slack_api import EventSender

        sender = EventSender(f"http://127.0.0.1:{running.port}/slack/events", self.session)
        latencies: list[float] = []
        begun = 0
        at_least = min(turns, max(MIN_TURNS, concurrency))
        limit = self.args.max_seconds

        def another() -> bool:
            nonlocal begun
            if begun >= turns or (begun >= at_least and time.perf_counter() - started > limit):
                return False
            begun += 1
            return True

        async def client(index: int) -> None:
            while another():
                slot = index if concurrency > 1 else begun % self.args.concurrency
                latencies.append(await self.turn(running, sender, slot))

        self.slack.forget()
        self.openai.requests.clear()
        await asyncio.sleep(0.05)  # the SUT finishes the previous phase's last turns (persisting) first
        sut_before, driver_before = _cpu_seconds(running.process.pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client(index) for index in range(concurrency)))
        wall = time.perf_counter() - started
        driver_after = time.process_time()
        await asyncio.sleep(0.05)  # ... and this phase's, before its CPU time is read
        sut_after = _cpu_seconds(running.process.pid)
        if record is None:
            return
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

    async def turn(self, running: Running, sender: Any, client: int) -> float:
        """One mention answered; returns seconds from the event POST to the final text in Slack."""
        from tests.fakes.slack_api import BOT_USER_ID

        number = next(self.numbers)
        text = f"ping {number}"
        history = running.variant.history
        thread = history_thread_ts(client) if history else None
        event = self.slack.message_event(
            f"<@{BOT_USER_ID}> {text}",
            mention=True,
            channel=HISTORY_CHANNEL if history else CHANNEL,
            user=self.users[client % len(self.users)],
            thread_ts=thread,
        )
        key = thread or str(event["ts"])
        future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
        expected = f"echo: {text}"
        self.slack.waiters[key] = (expected, future)
        try:
            started = time.perf_counter()
            delivery = await sender.event(self.slack.envelope(event))
            if delivery.status != 200:
                raise RuntimeError(f"{running.name}: event answered {delivery.status} {delivery.body[:200]}")
            try:
                done, shown = await asyncio.wait_for(future, TURN_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(
                    f"{running.name}: no answer to {text!r} within {TURN_TIMEOUT:.0f} s; its log ends:\n"
                    f"{self.log_tail(running.log_path)}"
                ) from None
        finally:
            self.slack.waiters.pop(key, None)
        if shown != expected:
            raise RuntimeError(f"{running.name}: turn {text!r} answered {shown!r}")
        return done - started


# ============================================================================================= the report


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _x(value: float, floor: float) -> str:
    return f"x{value / floor:.2f}" if floor else "-"


def _cpu_per_turn(phase: Phase) -> float:
    return phase.sut_cpu / phase.turns if phase.turns else 0.0


def _log_problems(path: Path, offset: int) -> list[str]:
    """Warnings and errors the SUT logged after it was up."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if " WARNING " in line or " ERROR " in line or "Traceback" in line]


def report(runs: Sequence[Running], args: argparse.Namespace, pinned: str) -> list[str]:
    c = args.concurrency
    width = max(len(run.name) for run in runs) + 2
    seq_head = "sequential".center(29, "-")
    con_head = f"{c} concurrent".center(30, "-")
    lines = [
        f"{'':<{width}}{'wire':>8}  {seq_head}  {con_head}{'SUT CPU':>9}{'driver':>8}",
        f"{'variant':<{width}}{'calls':>8}{'n':>7}{'/s':>6}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'n':>8}{'/s':>6}{'p50 ms':>8}{'p95 ms':>8}{'ms/turn':>9}{'CPU':>8}",
    ]
    lines.append("-" * len(lines[-1]))
    for run in runs:
        seq, con = run.sequential, run.concurrent
        calls = f"{con.slack_calls / con.turns:.0f}+{con.openai_calls / con.turns:.0f}"
        driver_share = con.driver_cpu / con.wall if con.wall else 0.0
        lines.append(
            f"{run.name:<{width}}{calls:>8}{seq.turns:>7}{seq.per_second:>6,.0f}{_ms(seq.median):>8}"
            f"{_ms(seq.percentile(0.95)):>8}{con.turns:>8}{con.per_second:>6,.0f}{_ms(con.median):>8}"
            f"{_ms(con.percentile(0.95)):>8}{_ms(_cpu_per_turn(con)):>9}{driver_share:>8.0%}"
        )
    floor = runs[0]
    base = runs[1]
    lines += [
        "",
        f"ratios to {floor.name}, measured in this run (turns/s: <1 is slower; latency, CPU: >1 is more):",
    ]
    for run in runs[1:]:
        seq, con = run.sequential, run.concurrent
        lines.append(
            f"  {run.name:<{width}}seq/s {_x(seq.per_second, floor.sequential.per_second):>6}"
            f"  p50 {_x(seq.median, floor.sequential.median):>6}"
            f"  |  c{c}/s {_x(con.per_second, floor.concurrent.per_second):>6}"
            f"  p50 {_x(con.median, floor.concurrent.median):>6}"
            f"  |  CPU/turn {_x(_cpu_per_turn(con), _cpu_per_turn(floor.concurrent)):>6}"
        )
    history = [run for run in runs if run.variant.history]
    if history:
        lines += ["", f"history length: ratios to {base.name} (new threads), same run:"]
        for run in history:
            seq, con = run.sequential, run.concurrent
            tokens = run.info.get("tokens_per_thread", 0)
            sent = con.chat_messages / con.chat_requests if con.chat_requests else 0
            lines.append(
                f"  {run.name:<{width}}seq p50 {_x(seq.median, base.sequential.median):>6}"
                f"  c{c}/s {_x(con.per_second, base.concurrent.per_second):>6}"
                f"  CPU/turn {_x(_cpu_per_turn(con), _cpu_per_turn(base.concurrent)):>6}"
                f"  ({tokens:,} tokens seeded, {sent:,.0f} msgs a call)"
            )
    for run in runs:
        problems = _log_problems(run.log_path, run.log_from)
        if problems:
            shown = [textwrap.shorten(line, 200) for line in problems[:3]]
            lines += [
                "",
                f"{run.name}: {len(problems)} warning/error log lines while measuring, e.g.:",
                *shown,
            ]
    stalled = [run.name for run in runs if run.sequential.median >= STALL]
    if stalled:
        text = (
            f"{', '.join(stalled)}: a median turn of {STALL:.1f} s or more, with a model that answers "
            "at once, is time spent waiting, not working: e.g. the final edit waiting for a throttled "
            "intermediate edit (bots/slack/replier.py, EDIT_INTERVAL = 1 s). Its turns/s and latencies "
            "measure that wait."
        )
        lines += ["", *textwrap.wrap(text, width=110)]
    text = (
        f"Up to {args.turns} sequential and {args.turns} concurrent turns per variant in {args.rounds} "
        f"rounds (after {args.warmup} warm-up turns; a phase stops starting turns after "
        f"{args.max_seconds:g} s per round, n is what was timed), each an app_mention answered in its "
        "thread. "
        "calls/turn: Slack Web API + OpenAI requests per turn the fakes received (users.info, cached by "
        "Threadwise, not counted). seq: one turn at a time; "
        f"c{c}: {c} clients each with its own thread. p50/p95: event POST -> final chat.update text in the "
        "fake. SUT CPU: the serving process's CPU time per concurrent turn; driver CPU: the fakes + load "
        f"generator's share of one core during the c{c} phase (near 100% means the driver, not the SUT, "
        f"limits turns/s). {pinned} "
        "The full-window history row sends every stored message to the model (the default, no "
        f"THREADWISE_HISTORY_MAX_TOKENS), so its cost grows with the thread up to the model's window; the "
        f"cap-8k row bounds the window at {HISTORY_CAP:,} tokens. Times are of this machine and this run "
        "only: compare ratios, not absolute numbers."
    )
    lines += ["", *textwrap.wrap(text, width=110)]
    return lines


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    for package in ("slack_bolt", "slack_sdk", "openai", "aiohttp", "SQLAlchemy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{package} {importlib.metadata.version(package)}")
    return ", ".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--turns", type=int, default=600, help="timed turns per variant and phase (default 600)"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent clients/threads (default 20)")
    parser.add_argument("--warmup", type=int, default=60, help="untimed turns per variant first (default 60)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds the timed turns are split into (default 2)"
    )
    parser.add_argument(
        "--history", type=int, default=1_000, help="messages per existing thread (default 1000)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=5.0,
        help="a phase of one round starts no new turn after this long (default 5; the table shows n)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the SUT and the driver to CPUs")
    parser.add_argument("--serve", choices=("relay", "threadwise"), help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--users", default="", help=argparse.SUPPRESS)
    parser.add_argument("--seed-threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seed-messages", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.serve:
        return serve(args)
    if args.turns < 1 or args.concurrency < 1 or args.rounds < 1:
        raise SystemExit("--turns, --concurrency and --rounds must be at least 1")
    _ensure_repo_importable()
    _default_tiktoken_cache()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    sut_cpu: int | None = None
    if not args.no_pin and len(cpus) >= 2:
        sut_cpu = cpus[0]
        os.sched_setaffinity(0, set(cpus[1:]))  # before the event loop starts any thread
        pinned = f"Each SUT was pinned to CPU {sut_cpu} (one core), the driver to CPU(s) {cpus[1:]}."
    else:
        pinned = f"Not pinned ({len(cpus) or 'unknown'} CPU(s) usable): SUT and driver shared the CPU(s)."
    print(f"Slack overhead benchmark: {_versions()}; {pinned}", flush=True)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="threadwise-slack-bench-") as workdir:
            runs = asyncio.run(_drive(args, Path(workdir), sut_cpu))
            for line in report(runs, args, pinned):
                print(line)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


async def _drive(args: argparse.Namespace, workdir: Path, sut_cpu: int | None) -> list[Running]:
    """The driver; SIGTERM cancels it as Ctrl-C does (asyncio.run), so the children stop and the temp dir
    is removed."""
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await Driver(args, workdir, sut_cpu).run()


if __name__ == "__main__":
    sys.exit(main())
