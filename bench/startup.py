"""Where does `threadwise serve`'s start-up go (issue 14)? A timeline from spawn to the first /healthz 200.

The driver (this process) runs the loopback Slack and OpenAI fakes (tests/fakes) and starts ``threadwise
serve`` in Slack HTTP mode with SQLite in a temp dir, with the environment of bench/lean.py's Threadwise
(defaults, THREADWISE_USER_RATE_LIMIT=off), ``--starts`` times: the first on a fresh database (all
migrations), the others restarts at head. For each start it prints the time to the first 200 from /healthz
(polled every 5 ms), the CPU time the process used until then (all threads: steadier than wall time on a
shared machine), RSS one second after ready, and the phases serve logs at ready (``startup`` in its
"ready in … s" log line: interpreter, imports, settings, database, token tables, adapters, listen...).

``--importtime``: one more start under ``python -X importtime``; prints the modules' import time grouped by
top-level package (self time, so the groups add up), the slowest modules by cumulative time, and whether
packages Slack-only serve does not use (discord, mcp, alembic, …) were imported. ``--source DIR`` runs
another source tree's Threadwise (e.g. ``git archive <rev> | tar -x -C DIR``); ``--baseline DIR`` runs
that tree too, its starts interleaved with this one's (a tree without the "ready" line shows no phases).

Nothing is asserted; figures on a shared machine swing, compare within one run:

    python bench/startup.py [--starts 4] [--importtime] [--source DIR] [--baseline DIR] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.slack_load import bench_slack_class, child_env, cpu_seconds, free_port, rss_mb  # noqa: E402

SETTLE = 1.0
# Packages a Slack-only, SQLite `serve` has no use for: each one imported is start-up time and memory spent.
UNUSED = (
    "discord",
    "mcp",
    "alembic",
    "matplotlib",
    "PIL",
    "pypdf",
    "docx",
    "openpyxl",
    "redis",
    "asyncpg",
    "psycopg",
    "slack_bolt.adapter.socket_mode",
    "slack_sdk.socket_mode",
    "sqlalchemy.orm",
)


class Starts:
    """The starts of one source tree (its own database and log in ``workdir``)."""

    def __init__(self, name: str, source: Path, workdir: Path) -> None:
        self.name = name
        self.source = source
        self.workdir = workdir
        self.results: list[dict[str, object]] = []

    def environment(self, openai_url: str, slack_url: str, port: int) -> dict[str, str]:
        extra = {
            "PORT": str(port),
            "PYTHONPATH": str(self.source),
            "THREADWISE_USER_RATE_LIMIT": "off",
            "THREADWISE_MODERATION": "false",
            "THREADWISE_LOG_FORMAT": "json",
        }
        database = self.workdir / f"{self.name}.db"
        return child_env(openai_url=openai_url, slack_url=slack_url, database=database, extra=extra)

    async def once(
        self, session: object, openai_url: str, slack_url: str, *, importtime: bool, profile: str = ""
    ) -> dict[str, object]:
        import aiohttp

        assert isinstance(session, aiohttp.ClientSession)
        port = free_port()
        command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "bots", "serve"]
        if profile:
            command[1:1] = ["-m", "cProfile", "-o", profile]
        log_path = self.workdir / f"{self.name}.log"
        err_path = self.workdir / f"{self.name}-importtime.txt"
        with log_path.open("wb") as log_file, err_path.open("wb") as err_file:
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=err_file if importtime else log_file,
                env=self.environment(openai_url, slack_url, port),
                cwd=str(self.workdir),
            )
            url = f"http://127.0.0.1:{port}/healthz"
            try:
                while True:
                    if process.returncode is not None or time.perf_counter() - started > 120:
                        raise RuntimeError(f"serve did not become ready:\n{log_path.read_text()[-3000:]}")
                    with contextlib.suppress(OSError, asyncio.TimeoutError):
                        async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                            if response.status == 200:
                                break
                    await asyncio.sleep(0.005)
                ready = time.perf_counter() - started
                cpu = cpu_seconds(process.pid)
                await asyncio.sleep(SETTLE)
                rss = rss_mb(process.pid)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                await process.wait()
        return {
            "ready": ready,
            "cpu": cpu,
            "rss": rss,
            "phases": _phases(log_path),
            "memory": _phases(log_path, "startup_mb"),
        }


def _phases(log_path: Path, field: str = "startup") -> dict[str, float]:
    """The ``startup`` phases (seconds; ``startup_mb``: resident MB added) of serve's "ready" log line (JSON
    logs), in order; {} for a tree without it."""
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get(field), dict):
                return {str(k): float(v) for k, v in record[field].items()}
    return {}


def _importtime(path: Path) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) from ``-X importtime`` output."""
    rows = []
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    for line in path.read_text(errors="replace").splitlines():
        match = pattern.match(line)
        if match:
            rows.append((match.group(4), int(match.group(1)), int(match.group(2))))
    return rows


def report_imports(rows: list[tuple[str, int, int]], top: int) -> None:
    groups: dict[str, int] = defaultdict(int)
    for module, self_us, _ in rows:
        root = module.split(".")[0]
        if root in ("core", "bots"):
            root = ".".join(module.split(".")[:2])
        groups[root] += self_us
    total = sum(groups.values())
    print(f"\nimports: {len(rows)} modules, {total / 1e6:.3f} s self time in all")
    print("  by package (self time):")
    for root, micros in sorted(groups.items(), key=lambda item: -item[1])[:top]:
        print(f"    {root:<36} {micros / 1000:7.1f} ms")
    print("  slowest modules (self time):")
    for module, self_us, cumulative in sorted(rows, key=lambda row: -row[1])[:top]:
        print(f"    {module:<52} {self_us / 1000:7.1f} ms self {cumulative / 1000:7.1f} ms cumulative")
    names = {module for module, _, _ in rows}
    used = [pkg for pkg in UNUSED if any(n == pkg or n.startswith(pkg + ".") for n in names)]
    print(f"  imported though Slack-only SQLite serve does not use them: {', '.join(used) or 'none'}")


def summary(starts: Starts) -> None:
    results = starts.results
    for number, result in enumerate(results):
        kind = "fresh" if number == 0 else "restart"
        phases = result["phases"]
        assert isinstance(phases, dict)
        line = "  ".join(f"{name} {seconds:.3f}" for name, seconds in phases.items())
        ready, cpu, rss = result["ready"], result["cpu"], result["rss"]
        print(f"  {kind:<8} ready {ready:.3f} s  CPU {cpu:.2f} s  RSS {rss:.0f} MB  | {line}")
    restarts = results[1:] or results
    ready = statistics.median(float(str(r["ready"])) for r in restarts)
    cpu = statistics.median(float(str(r["cpu"])) for r in restarts)
    rss = statistics.median(float(str(r["rss"])) for r in restarts)
    print(f"  median restart: ready {ready:.3f} s, CPU to ready {cpu:.2f} s, RSS {rss:.0f} MB")
    tables: list[dict[str, float]] = [r["phases"] for r in restarts]  # type: ignore[misc]
    names = list(dict.fromkeys(name for phases in tables for name in phases))
    if names:
        medians = {name: statistics.median(p.get(name, 0.0) for p in tables) for name in names}
        print("  phases, s (median of restarts): " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
        memory = restarts[-1]["memory"]
        assert isinstance(memory, dict)
        shown = ", ".join(f"{k} {v:+.1f}" for k, v in memory.items() if abs(v) >= 0.1)
        print(f"  resident MB each phase added (last restart): {shown}")


async def main(args: argparse.Namespace) -> None:
    import aiohttp

    from tests.fakes.openai_api import FakeOpenAI

    with tempfile.TemporaryDirectory(prefix="tw-startup-") as folder:
        workdir = Path(folder)
        trees = [Starts("this", args.source, workdir)]
        if args.baseline is not None:
            trees.append(Starts("baseline", args.baseline, workdir))
        async with (
            FakeOpenAI() as openai_fake,
            bench_slack_class()() as slack_fake,
            aiohttp.ClientSession() as session,
        ):
            urls = openai_fake.base_url, slack_fake.api_url
            for number in range(args.starts):  # interleaved, so both trees see the same conditions
                for starts in trees[number % len(trees) :] + trees[: number % len(trees)]:
                    starts.results.append(await starts.once(session, *urls, importtime=False))
            for starts in trees:
                print(f"{starts.name} ({starts.source}):")
                summary(starts)
            this = trees[0]
            if args.profile:
                await this.once(session, *urls, importtime=False, profile=args.profile)
                print(f"cProfile of one restart: {args.profile}")
            if args.importtime:
                await this.once(session, *urls, importtime=True)
                path = workdir / f"{this.name}-importtime.txt"
                report_imports(_importtime(path), args.top)
                if args.save_importtime:
                    shutil.copyfile(path, args.save_importtime)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--save-importtime", metavar="FILE", help="keep the -X importtime output in FILE")
    parser.add_argument("--source", help="run Threadwise from this source tree")
    parser.add_argument("--baseline", help="also this source tree, its starts interleaved with the other's")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--profile", metavar="FILE", help="one more start under cProfile, saved to FILE")
    arguments = parser.parse_args()
    arguments.source = Path(arguments.source).resolve() if arguments.source else REPO
    arguments.baseline = Path(arguments.baseline).resolve() if arguments.baseline else None
    asyncio.run(main(arguments))
