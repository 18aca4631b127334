"""Lean and quick (issue 14): `threadwise serve` side by side with a minimal relay, in one run.

DESIGN.md §7: "against a minimal relay doing the same wire calls with the same SDKs, measured in one run: CPU
per turn within 1.3x, throughput at least 0.8x; `serve` ready within 1.3x the relay's time; under 90 MB
resident after start (Slack only)".

The driver (this process) runs the loopback fakes of Slack and OpenAI (tests/fakes) and plays Slack. Each
system under test (SUT) is a child process, pinned to one CPU while the driver has the other(s):

  relay        bench/relay.py: aiohttp serving /healthz and /slack/events; verify the signature
               (slack_sdk's SignatureVerifier), ack, then slack_sdk ``chat.postMessage`` (the placeholder), an
               openai streamed chat completion (system prompt + the message), one ``chat.update`` with the
               answer. No database. "relay + moderation" (``--moderation``) also sends the question to
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
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, the repository is not
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.slack_load import (
    Load,
    Phase,
    bench_slack_class,
    child_env,
    free_port,
    log_tail,
    ms,
    pin,
    prepare,
    ratio,
    rss_mb,
    stop,
    versions,
)

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
RELAY = SCRIPT.parent / "relay.py"

CHANNEL = "C0LEAN"
READY_TIMEOUT = 120.0
SETTLE = 1.0  # seconds after ready before RSS is read


@dataclass(frozen=True, slots=True)
class System:
    name: str
    kind: str  # relay | threadwise
    env: dict[str, str]
    pair: str  # the relay this is compared with
    source: Path | None = None  # Threadwise from this source tree (``--baseline``), not the installed one
    options: tuple[str, ...] = ()  # the relay's command-line options


SYSTEMS = (
    System("relay", "relay", {}, "relay"),
    System("threadwise", "threadwise", {"THREADWISE_MODERATION": "false"}, "relay"),
    System("relay + moderation", "relay", {}, "relay + moderation", options=("--moderation",)),
    System("threadwise, moderation on", "threadwise", {}, "relay + moderation"),
)


# ============================================================================================= the driver


def _threadwise_command() -> list[str]:
    script = Path(sys.executable).parent / "threadwise"
    found = str(script) if script.exists() else shutil.which("threadwise")
    return [found] if found else [sys.executable, "-m", "bots"]


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

    @property
    def name(self) -> str:
        return self.system.name


class Driver:
    def __init__(self, args: argparse.Namespace, workdir: Path, sut_cpu: int | None) -> None:
        self.args = args
        self.workdir = workdir
        self.sut_cpu = sut_cpu
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

        from tests.fakes.openai_api import FakeOpenAI

        args = self.args
        async with (
            FakeOpenAI() as openai_fake,
            bench_slack_class()() as slack_fake,
            contextlib.AsyncExitStack() as stack,
        ):
            self.openai, self.slack = openai_fake, slack_fake
            for user in self.users:
                slack_fake.add_user(user, f"lean{user[-4:]}")
            stack.push_async_callback(self.stop_all)
            connector = aiohttp.TCPConnector(limit=0)
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            self.load = Load(slack_fake, openai_fake, session, self.users)
            for number in range(args.starts):
                shift = number % len(self.systems)
                for system in (*self.systems[shift:], *self.systems[:shift]):
                    previous = self.runs.get(system.name)
                    if previous is not None:
                        await stop(previous)
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
                running.rss_total = rss_mb(running.process.pid)
            self.progress("done")
            return runs

    async def profile(self, runs: Sequence[Running]) -> list[asyncio.subprocess.Process]:
        """py-spy sampling each SUT over the timed blocks (``--profile DIR``: one raw file per SUT, for
        flamegraph.pl or a quick ``sort``); it samples without pausing the SUT, yet costs the run some CPU."""
        folder = Path(self.args.profile)
        os.makedirs(folder, exist_ok=True)
        profilers = []
        for running in runs:
            slug = re.sub(r"[^a-z0-9]+", "-", running.name.lower()).strip("-")
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
        slug = re.sub(r"[^a-z0-9]+", "-", system.name.lower()).strip("-")
        port = free_port()
        extra = {"PORT": str(port)}
        if system.kind == "threadwise":
            extra |= {"THREADWISE_USER_RATE_LIMIT": "off", **system.env}
            command = [*_threadwise_command(), "serve"]
            if system.source is not None:  # its packages first on the path, the same interpreter and SDKs
                extra["PYTHONPATH"] = str(system.source)
                command = [sys.executable, "-m", "bots", "serve"]
        else:
            command = [sys.executable, str(RELAY), *system.options]
        env = child_env(
            openai_url=self.openai.base_url,
            slack_url=self.slack.api_url,
            database=self.workdir / f"{slug}.db",
            extra=extra,
        )
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
                raise RuntimeError(f"{system.name} did not become ready:\n{log_tail(log_path)}")
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                async with self.load.session.get(url, timeout=1) as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.01)
        running.ready.append(time.perf_counter() - started)
        await asyncio.sleep(SETTLE)
        rss = rss_mb(process.pid)
        if rss is not None:
            running.rss_ready.append(rss)
        sender = self.load.sender(running)
        running.first_turn.append(await self.load.turn(running, sender, self.users[0], channel=CHANNEL))
        running.served += 1
        return running

    async def stop_all(self) -> None:
        await asyncio.gather(*(stop(running) for running in self.runs.values()))

    async def block(self, running: Running, turns: int, *, record: Phase | None) -> None:
        """``turns`` turns (each a mention in a new thread) from ``--concurrency`` closed-loop clients."""
        sender = self.load.sender(running)

        async def turn(client: int, _number: int) -> float:
            return await self.load.turn(running, sender, self.users[client], channel=CHANNEL)

        running.served += await self.load.block(running, turns, self.args.concurrency, turn, record)


# ============================================================================================= the report


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _restart(run: Running) -> float:
    return statistics.median(run.ready[1:] or run.ready)


def _rss_ready(run: Running) -> float | None:
    return statistics.median(run.rss_ready) if run.rss_ready else None


def _cpu(run: Running) -> float:
    return run.timed.cpu_per_turn


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
            f"{run.system.name:<{width}}{calls:>6}{ms(_cpu(run)):>8}{phase.per_second:>9.0f}"
            f"{ms(phase.median):>8}{ms(phase.percentile(0.95)):>8}{run.ready[0]:>9.2f}"
            f"{_restart(run):>10.2f}{ms(statistics.median(run.first_turn)):>8}{_mb(_rss_ready(run)):>8}"
            f"{_mb(run.rss_total):>9}"
        )
    by_name = {run.system.name: run for run in runs}
    lines += ["", "ratios to the relay making the same wire calls (turns/s: <1 is slower; others: >1 more):"]
    for run in runs:
        floor = by_name[run.system.pair]
        if floor is run:
            continue
        lines.append(
            f"  {run.system.name:<{width}}CPU/turn {ratio(_cpu(run), _cpu(floor)):>6}"
            f"  turns/s {ratio(run.timed.per_second, floor.timed.per_second):>6}"
            f"  p50 {ratio(run.timed.median, floor.timed.median):>6}"
            f"  ready {ratio(run.ready[0], floor.ready[0]):>6}"
            f" (restart {ratio(_restart(run), _restart(floor))})"
            f"  RSS {ratio(_rss_ready(run), _rss_ready(floor)):>6}"
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if min(args.turns, args.concurrency, args.block, args.starts) < 1:
        raise SystemExit("--turns, --concurrency, --block and --starts must be at least 1")
    prepare()
    sut_cpu, pinned = pin(args.no_pin)
    print(f"Lean benchmark: {versions()}; {pinned}", flush=True)
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
