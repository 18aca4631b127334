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
import json
import logging
import math
import os
import random
import re
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/ is on the path, the repository is not
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.relay import MODEL, serve_relay
from bench.slack_load import (
    Load,
    Phase,
    bench_slack_class,
    child_env,
    log_tail,
    ms,
    pin,
    prepare,
    ratio,
    stop,
    versions,
)

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]

CHANNEL = "C0BENCH"
HISTORY_CHANNEL = "C0HISTORY"
HISTORY_CAP = 8_000
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
    prepare()
    users = [user for user in args.users.split(",") if user]
    if args.serve == "relay":
        _configure_logging("INFO")
        asyncio.run(serve_relay(0, moderate=False, until=_until_stopped, listening=_announce))
    else:
        asyncio.run(serve_threadwise(args.seed_threads, args.seed_messages, users))
    return 0


# ============================================================================================= the driver


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


class Driver:
    def __init__(self, args: argparse.Namespace, workdir: Path, sut_cpu: int | None) -> None:
        self.args = args
        self.workdir = workdir
        self.sut_cpu = sut_cpu
        self.users = [f"U0B{index:04d}" for index in range(args.concurrency)]
        self.running: list[Running] = []

    async def run(self) -> list[Running]:
        import aiohttp

        from tests.fakes.openai_api import FakeOpenAI

        args = self.args
        async with (
            FakeOpenAI() as openai_fake,
            bench_slack_class()() as slack_fake,
            contextlib.AsyncExitStack() as stack,
        ):
            for user in self.users:
                slack_fake.add_user(user, f"bench{user[-4:]}")
            stack.push_async_callback(self.stop_all)
            connector = aiohttp.TCPConnector(limit=0)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            self.load = Load(slack_fake, openai_fake, session, self.users)
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
        env = child_env(
            openai_url=self.load.openai.base_url,
            slack_url=self.load.slack.api_url,
            database=self.workdir / f"{slug}.db",
            extra=THREADWISE_COMMON | variant.env if variant.kind == "threadwise" else {},
        )
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
            await stop(running)
            raise RuntimeError(f"{name} did not start:\n{log_tail(log_path)}")
        running.info = json.loads(line)
        running.log_from = log_path.stat().st_size  # start-up notices are not what this run is about
        running.port = int(running.info["port"])
        return running

    async def stop_all(self) -> None:
        await asyncio.gather(*(stop(running) for running in self.running))

    async def phase(self, running: Running, turns: int, concurrency: int, *, record: Phase | None) -> None:
        """``turns`` turns from ``concurrency`` closed-loop clients; measurements added to ``record``."""
        sender = self.load.sender(running)
        history = running.variant.history
        channel = HISTORY_CHANNEL if history else CHANNEL

        async def turn(client: int, number: int) -> float:
            slot = client if concurrency > 1 else number % self.args.concurrency
            thread = history_thread_ts(slot) if history else None
            user = self.users[slot % len(self.users)]
            return await self.load.turn(running, sender, user, channel=channel, thread_ts=thread)

        await self.load.block(
            running,
            turns,
            concurrency,
            turn,
            record,
            max_seconds=self.args.max_seconds,
            min_turns=MIN_TURNS,
        )


# ============================================================================================= the report


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
            f"{run.name:<{width}}{calls:>8}{seq.turns:>7}{seq.per_second:>6,.0f}{ms(seq.median):>8}"
            f"{ms(seq.percentile(0.95)):>8}{con.turns:>8}{con.per_second:>6,.0f}{ms(con.median):>8}"
            f"{ms(con.percentile(0.95)):>8}{ms(con.cpu_per_turn):>9}{driver_share:>8.0%}"
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
            f"  {run.name:<{width}}seq/s {ratio(seq.per_second, floor.sequential.per_second):>6}"
            f"  p50 {ratio(seq.median, floor.sequential.median):>6}"
            f"  |  c{c}/s {ratio(con.per_second, floor.concurrent.per_second):>6}"
            f"  p50 {ratio(con.median, floor.concurrent.median):>6}"
            f"  |  CPU/turn {ratio(con.cpu_per_turn, floor.concurrent.cpu_per_turn):>6}"
        )
    history = [run for run in runs if run.variant.history]
    if history:
        lines += ["", f"history length: ratios to {base.name} (new threads), same run:"]
        for run in history:
            seq, con = run.sequential, run.concurrent
            tokens = run.info.get("tokens_per_thread", 0)
            sent = con.chat_messages / con.chat_requests if con.chat_requests else 0
            lines.append(
                f"  {run.name:<{width}}seq p50 {ratio(seq.median, base.sequential.median):>6}"
                f"  c{c}/s {ratio(con.per_second, base.concurrent.per_second):>6}"
                f"  CPU/turn {ratio(con.cpu_per_turn, base.concurrent.cpu_per_turn):>6}"
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
    prepare()
    sut_cpu, pinned = pin(args.no_pin)
    print(f"Slack overhead benchmark: {versions()}; {pinned}", flush=True)
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
