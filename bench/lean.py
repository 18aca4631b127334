"""Lean and quick (issue 14): `threadwise serve` side by side with a minimal relay, in one run.

DESIGN.md §7: "against a minimal relay doing the same wire calls with the same SDKs, measured in one run: CPU
per turn within 1.3x, throughput at least 0.8x; `serve` ready within 1.3x the relay's time; under 90 MB
resident after start (Slack only)".

The driver (this process) runs the loopback fakes of Slack and OpenAI (tests/fakes) and plays Slack. Each
system under test (SUT) is a child process, pinned to one CPU while the driver has the other(s):

  relay        this script with ``--serve relay``: aiohttp serving /healthz and /slack/events; verify the
               signature (slack_sdk's SignatureVerifier), ack, then slack_sdk ``chat.postMessage`` (the
               placeholder), an openai streamed chat completion (system prompt + the message), one
               ``chat.update`` with the answer. No database. "relay + moderation" also sends the question to
               ``moderations.create`` before the completion and the answer after it, as Threadwise does.
  threadwise   the real command, ``threadwise serve``, in Slack HTTP mode with SQLite in a temp dir, settings
               from the environment, defaults except THREADWISE_USER_RATE_LIMIT=off (the default 20/minute
               per user would throttle a benchmark) and, in "moderation off", THREADWISE_MODERATION=false.
               So each pair makes the same wire calls per turn (the table's "calls" column shows them).

Measured, each in this one run:
- ready: seconds from spawning the process to the first 200 from /healthz, polled every 10 ms. Every SUT
  is started ``--starts`` times, interleaved; Threadwise's first start creates its database (all
  migrations), the later ones find it at head (a restart). The table gives the fresh start and the median
  restart.
- RSS ready: resident memory (VmRSS) one second after ready (anything loaded in the background counts),
  before any turn; then one turn is timed ("1st ms": what the first user after a start waits).
- turns: ``--turns`` timed turns per SUT at ``--concurrency`` closed-loop clients (each turn a mention in a
  new thread), in blocks of ``--block`` turns that rotate through the SUTs (so every ratio comes from the
  same conditions), after ``--warmup`` untimed turns. CPU ms/turn is the SUT process's user+system time
  (from /proc) over its blocks; turns/s is turns over the blocks' wall time; p50/p95 run from the event
  POST to the final ``chat.update`` in the fake.
- RSS end: resident memory after ``--total`` turns served (untimed turns top it up), for the moderation-off
  pair (``--total-all``: every system; the moderation-on pair's turns are the slowest to top up).

Nothing is asserted. Run from the repository root with the virtualenv active:

    python bench/lean.py [--turns 200] [--concurrency 10] [--block 50] [--starts 3] [--total 1000]
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]

# As bench/slack_overhead.py (and Threadwise's defaults) has them.
MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = (
    "You are Threadwise, a helpful assistant in a team chat. Answer concisely and use Markdown sparingly."
)
PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"
CHANNEL = "C0LEAN"
TURN_TIMEOUT = 30.0
READY_TIMEOUT = 120.0
SETTLE = 1.0  # seconds after ready before RSS is read
_SETTING_PREFIXES = ("THREADWISE_", "SLACK_", "OPENAI_", "DISCORD_")
_SETTING_NAMES = ("DATABASE_URL", "REDIS_URL", "PORT")


@dataclass(frozen=True, slots=True)
class System:
    name: str
    kind: str  # relay | threadwise
    env: dict[str, str]
    pair: str  # the relay this is compared with
    source: Path | None = (
        None  # Threadwise from this source tree (``--baseline``) instead of the installed one
    )


SYSTEMS = (
    System("relay", "relay", {}, "relay"),
    System("threadwise", "threadwise", {"THREADWISE_MODERATION": "false"}, "relay"),
    System("relay + moderation", "relay", {"LEAN_RELAY_MODERATION": "1"}, "relay + moderation"),
    System("threadwise, moderation on", "threadwise", {}, "relay + moderation"),
)


# ============================================================================================= the relay


async def serve_relay() -> None:
    """The floor: the same wire calls as a Threadwise turn, and nothing else."""
    import aiohttp
    from aiohttp import web
    from openai import AsyncOpenAI
    from slack_sdk.signature import SignatureVerifier
    from slack_sdk.web.async_client import AsyncWebClient

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("relay")
    env = os.environ
    moderate = env.get("LEAN_RELAY_MODERATION") == "1"
    mention = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>\s*")
    verifier = SignatureVerifier(env["SLACK_SIGNING_SECRET"])
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with aiohttp.ClientSession() as session:
        slack = AsyncWebClient(token=env["SLACK_BOT_TOKEN"], base_url=env["SLACK_API_URL"], session=session)
        llm = AsyncOpenAI(api_key=env["OPENAI_API_KEY"], base_url=env["OPENAI_BASE_URL"])

        async def answer(event: dict[str, Any]) -> None:
            try:
                channel = str(event["channel"])
                thread = str(event.get("thread_ts") or event["ts"])
                text = mention.sub("", str(event.get("text") or "")).strip()
                if moderate:
                    await llm.moderations.create(model="omni-moderation-latest", input=text)
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
                reply = "".join(parts)
                if moderate:
                    await llm.moderations.create(model="omni-moderation-latest", input=reply)
                await slack.chat_update(channel=channel, ts=str(posted["ts"]), text=reply)
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

        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_post("/slack/events", events)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", int(env["PORT"])).start()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await asyncio.gather(*tasks, return_exceptions=True)
            await llm.close()


# ============================================================================================= the driver


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _threadwise_command() -> list[str]:
    script = Path(sys.executable).parent / "threadwise"
    found = str(script) if script.exists() else shutil.which("threadwise")
    return [found] if found else [sys.executable, "-m", "bots"]


@dataclass(slots=True)
class Phase:
    """The timed turns of one SUT, summed over its blocks."""

    latencies: list[float] = field(default_factory=list)  # seconds, event POST -> final text seen
    wall: float = 0.0
    sut_cpu: float = 0.0
    slack_calls: int = 0
    openai_calls: int = 0

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
    system: System
    process: asyncio.subprocess.Process
    port: int
    log_path: Path
    ready: list[float] = field(default_factory=list)  # seconds, one per start (the first: fresh database)
    rss_ready: list[float] = field(default_factory=list)
    first_turn: list[float] = field(default_factory=list)  # seconds, the first turn after each start
    rss_total: float | None = None
    served: int = 0
    timed: Phase = field(default_factory=Phase)


class Driver:
    def __init__(self, args: argparse.Namespace, workdir: Path, sut_cpu: int | None) -> None:
        self.args = args
        self.workdir = workdir
        self.sut_cpu = sut_cpu
        self.numbers = itertools.count(1)
        self.users = [f"U0L{index:04d}" for index in range(args.concurrency)]
        self.runs: dict[str, Running] = {}
        self.began = time.perf_counter()
        self.systems = list(SYSTEMS)
        if args.baseline is not None:  # each Threadwise system again, from the baseline's source tree
            source = Path(args.baseline).resolve()
            for system in SYSTEMS:
                if system.kind == "threadwise":
                    baseline = System(
                        f"{system.name}, baseline", system.kind, system.env, system.pair, source
                    )
                    self.systems.insert(self.systems.index(system) + 1, baseline)

    async def run(self) -> list[Running]:
        import aiohttp

        from bench.slack_overhead import _bench_slack_class
        from tests.fakes.openai_api import FakeOpenAI

        args = self.args
        async with (
            FakeOpenAI() as openai_fake,
            _bench_slack_class()() as slack_fake,
            contextlib.AsyncExitStack() as stack,
        ):
            self.openai, self.slack = openai_fake, slack_fake
            for user in self.users:
                slack_fake.add_user(user, f"lean{user[-4:]}")
            stack.push_async_callback(self.stop_all)
            connector = aiohttp.TCPConnector(limit=0)
            self.session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            for number in range(args.starts):
                shift = number % len(self.systems)
                for system in (*self.systems[shift:], *self.systems[:shift]):
                    previous = self.runs.get(system.name)
                    if previous is not None:
                        await self.stop(previous)
                    await self.start(system, previous)
                self.progress(f"start {number + 1}/{args.starts} done")
            runs = [self.runs[system.name] for system in self.systems]
            for running in runs:
                await self.block(running, args.warmup, record=None)
            blocks = max(1, -(-args.turns // args.block))
            profilers = await self.profile(runs) if args.profile else []
            for number in range(blocks):
                shift = number % len(runs)
                for running in (*runs[shift:], *runs[:shift]):
                    await self.block(running, args.block, record=running.timed)
            for profiler in profilers:  # py-spy writes its file on SIGINT
                profiler.send_signal(signal.SIGINT)
                await profiler.wait()
            self.progress("timed turns done; topping up")
            for running in runs:
                if running.system.pair != "relay" and not args.total_all:
                    continue  # the moderation-on pair: the same memory story, and the slowest turns
                if running.served < args.total:
                    await self.block(running, args.total - running.served, record=None)
                await asyncio.sleep(SETTLE)
                running.rss_total = _rss_mb(running.process.pid)
            self.progress("done")
            return runs

    async def profile(self, runs: Sequence[Running]) -> list[asyncio.subprocess.Process]:
        """py-spy sampling each SUT over the timed blocks (``--profile DIR``: one raw file per SUT, for
        flamegraph.pl or a quick ``sort``); it samples without pausing the SUT, yet costs the run some CPU."""
        folder = Path(self.args.profile)
        os.makedirs(folder, exist_ok=True)
        profilers = []
        for running in runs:
            slug = re.sub(r"[^a-z0-9]+", "-", running.system.name.lower()).strip("-")
            profilers.append(
                await asyncio.create_subprocess_exec(
                    "py-spy", "record", "--pid", str(running.process.pid), "--rate", "250",
                    "--format", "raw", "--nonblocking", "--output", str(folder / f"{slug}.txt"),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )
            )  # fmt: skip
        await asyncio.sleep(0.5)  # attached before the first timed turn
        return profilers

    def progress(self, text: str) -> None:
        print(f"  {time.perf_counter() - self.began:5.0f} s  {text}", file=sys.stderr, flush=True)

    async def start(self, system: System, previous: Running | None) -> Running:
        from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET

        slug = re.sub(r"[^a-z0-9]+", "-", system.name.lower()).strip("-")
        port = _free_port()
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
            "PORT": str(port),
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH")))),
            **system.env,
        }
        if system.kind == "threadwise":
            env["THREADWISE_USER_RATE_LIMIT"] = "off"
            command = [*_threadwise_command(), "serve"]
            if system.source is not None:  # its packages first on the path, the same interpreter and SDKs
                env["PYTHONPATH"] = str(system.source)
                command = [sys.executable, "-m", "bots", "serve"]
        else:
            command = [sys.executable, str(SCRIPT), "--serve-relay"]
        cpu = self.sut_cpu
        log_path = self.workdir / f"{slug}.log"
        with log_path.open("ab") as log_file:
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
                cwd=str(self.workdir),
                preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
            )
        running = Running(system, process, port, log_path)
        if previous is not None:
            running.ready, running.rss_ready = previous.ready, previous.rss_ready
            running.first_turn = previous.first_turn
        self.runs[system.name] = running
        url = f"http://127.0.0.1:{port}/healthz"
        while True:
            if process.returncode is not None or time.perf_counter() - started > READY_TIMEOUT:
                raise RuntimeError(f"{system.name} did not become ready:\n{self.log_tail(log_path)}")
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                async with self.session.get(url, timeout=1) as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.01)
        running.ready.append(time.perf_counter() - started)
        await asyncio.sleep(SETTLE)
        rss = _rss_mb(process.pid)
        if rss is not None:
            running.rss_ready.append(rss)
        from tests.fakes.slack_api import EventSender

        sender = EventSender(f"http://127.0.0.1:{port}/slack/events", self.session)
        running.first_turn.append(await self.turn(running, sender, 0))
        running.served += 1
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
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                print(f"  {running.system.name} did not stop within 20 s: killed", file=sys.stderr)
                process.kill()
                await process.wait()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(running) for running in self.runs.values()))

    async def block(self, running: Running, turns: int, *, record: Phase | None) -> None:
        """``turns`` turns from ``--concurrency`` closed-loop clients; measurements added to ``record``."""
        from bench.slack_overhead import _cpu_seconds
        from tests.fakes.slack_api import EventSender

        sender = EventSender(f"http://127.0.0.1:{running.port}/slack/events", self.session)
        latencies: list[float] = []
        remaining = turns

        async def client(index: int) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                latencies.append(await self.turn(running, sender, index))

        self.slack.forget()
        self.openai.requests.clear()
        await asyncio.sleep(0.05)  # the SUT finishes the previous block's last turns first
        cpu_before = _cpu_seconds(running.process.pid)
        started = time.perf_counter()
        await asyncio.gather(*(client(index) for index in range(self.args.concurrency)))
        wall = time.perf_counter() - started
        await asyncio.sleep(0.05)  # ... and this block's, before its CPU time is read
        cpu_after = _cpu_seconds(running.process.pid)
        running.served += len(latencies)
        if record is None:
            return
        record.latencies += latencies
        record.wall += wall
        if cpu_before is not None and cpu_after is not None:
            record.sut_cpu += cpu_after - cpu_before
        record.slack_calls += sum(1 for call in self.slack.calls if call.method != "users.info")
        record.openai_calls += len(self.openai.requests)

    async def turn(self, running: Running, sender: Any, client: int) -> float:
        """One mention answered in a new thread; seconds from the event POST to the final text in Slack."""
        from tests.fakes.slack_api import BOT_USER_ID

        text = f"ping {next(self.numbers)}"
        event = self.slack.message_event(
            f"<@{BOT_USER_ID}> {text}", mention=True, channel=CHANNEL, user=self.users[client]
        )
        key = str(event["ts"])
        future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
        expected = f"echo: {text}"
        self.slack.waiters[key] = (expected, future)
        try:
            started = time.perf_counter()
            delivery = await sender.event(self.slack.envelope(event))
            if delivery.status != 200:
                raise RuntimeError(f"{running.system.name}: event answered {delivery.status}")
            try:
                done, shown = await asyncio.wait_for(future, TURN_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(
                    f"{running.system.name}: no answer to {text!r} within {TURN_TIMEOUT:.0f} s; its log "
                    f"ends:\n{self.log_tail(running.log_path)}"
                ) from None
        finally:
            self.slack.waiters.pop(key, None)
        if shown != expected:
            raise RuntimeError(f"{running.system.name}: turn {text!r} answered {shown!r}")
        return done - started


# ============================================================================================= the report


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _x(value: float | None, floor: float | None) -> str:
    return f"x{value / floor:.2f}" if value is not None and floor else "-"


def _restart(run: Running) -> float:
    return statistics.median(run.ready[1:] or run.ready)


def _rss_ready(run: Running) -> float | None:
    return statistics.median(run.rss_ready) if run.rss_ready else None


def _cpu(run: Running) -> float:
    return run.timed.sut_cpu / run.timed.turns if run.timed.turns else 0.0


def report(runs: Sequence[Running], args: argparse.Namespace, pinned: str) -> list[str]:
    width = max(len(run.system.name) for run in runs) + 2
    head = (
        f"{'system':<{width}}{'calls':>6}{'CPU ms':>8}{'turns/s':>9}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'ready s':>9}{'restart s':>10}{'1st ms':>8}{'RSS MB':>8}{'RSS end':>9}"
    )
    lines = [head, "-" * len(head)]
    for run in runs:
        phase = run.timed
        calls = f"{phase.slack_calls / phase.turns:.0f}+{phase.openai_calls / phase.turns:.0f}"
        lines.append(
            f"{run.system.name:<{width}}{calls:>6}{_ms(_cpu(run)):>8}{phase.per_second:>9.0f}"
            f"{_ms(phase.median):>8}{_ms(phase.percentile(0.95)):>8}{run.ready[0]:>9.2f}"
            f"{_restart(run):>10.2f}{_ms(statistics.median(run.first_turn)):>8}{_mb(_rss_ready(run)):>8}"
            f"{_mb(run.rss_total):>9}"
        )
    by_name = {run.system.name: run for run in runs}
    lines += ["", "ratios to the relay making the same wire calls (turns/s: <1 is slower; others: >1 more):"]
    for run in runs:
        floor = by_name[run.system.pair]
        if floor is run:
            continue
        lines.append(
            f"  {run.system.name:<{width}}CPU/turn {_x(_cpu(run), _cpu(floor)):>6}"
            f"  turns/s {_x(run.timed.per_second, floor.timed.per_second):>6}"
            f"  p50 {_x(run.timed.median, floor.timed.median):>6}"
            f"  ready {_x(run.ready[0], floor.ready[0]):>6} (restart {_x(_restart(run), _restart(floor))})"
            f"  RSS {_x(_rss_ready(run), _rss_ready(floor)):>6}"
        )
    text = (
        f"{runs[0].timed.turns} timed turns per system at {args.concurrency} concurrent clients, in "
        f"blocks of {args.block} rotating through the systems, after {args.warmup} warm-up turns. calls: "
        "Slack Web API + OpenAI requests per turn the fakes received (users.info, cached by Threadwise, not "
        "counted). CPU ms: the SUT process's CPU time per timed turn. p50/p95: event POST -> final "
        "chat.update in the fake. "
        f"ready: spawn -> first 200 from /healthz; the first start (fresh database: every migration) and "
        f"the median of {args.starts - 1} restarts at head. 1st ms: the first turn after a start (median). "
        f"RSS MB: resident {SETTLE:g} s after ready, before that turn "
        f"(median of the starts); RSS end: after {args.total:,} turns served"
        f"{'' if args.total_all else ' (moderation-off pair only)'}. {pinned} Times are of this "
        "machine and this run only: compare ratios, not absolute numbers."
    )
    lines += ["", *textwrap.wrap(text, width=110)]
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=200, help="timed turns per system (default 200)")
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent clients (default 10)")
    parser.add_argument("--block", type=int, default=50, help="turns per interleaved block (default 50)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed turns per system first (default 20)")
    parser.add_argument("--starts", type=int, default=3, help="starts per system for ready (default 3)")
    parser.add_argument("--total", type=int, default=1000, help="turns served before RSS end (default 1000)")
    parser.add_argument(
        "--total-all", action="store_true", help="RSS end for the moderation-on pair too (longer)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the SUTs and the driver to CPUs")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run each Threadwise system from this source tree (e.g. `git worktree add` or "
        "`git archive <rev> | tar -x -C DIR`), for before/after figures from one run",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample every SUT with py-spy over the timed turns into DIR/<system>.txt (raw, folded stacks)",
    )
    parser.add_argument("--serve-relay", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.serve_relay:
        asyncio.run(serve_relay())
        return 0
    if min(args.turns, args.concurrency, args.block, args.starts) < 1:
        raise SystemExit("--turns, --concurrency, --block and --starts must be at least 1")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.slack_overhead import _default_tiktoken_cache, _versions

    _default_tiktoken_cache()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    sut_cpu: int | None = None
    if not args.no_pin and len(cpus) >= 2:
        sut_cpu = cpus[0]
        os.sched_setaffinity(0, set(cpus[1:]))
        pinned = f"Each SUT was pinned to CPU {sut_cpu}, the driver (fakes + load) to CPU(s) {cpus[1:]}."
    else:
        pinned = f"Not pinned ({len(cpus) or 'unknown'} CPU(s) usable): SUTs and driver shared the CPU(s)."
    print(f"Lean benchmark: {_versions()}; {pinned}", flush=True)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="threadwise-lean-") as workdir:
            runs = asyncio.run(Driver(args, Path(workdir), sut_cpu).run())
            for line in report(runs, args, pinned):
                print(line)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
