"""What does building a turn's context cost at 10 vs 1,000 vs 10,000 stored messages?

The design says a turn costs the same at message 10 and message 10,000: history is read newest-first only
as far as the model's window, and each conversation's window is cached in memory. This benchmark seeds a
fresh SQLite database (migrated the real way) with conversations of 10, 1,000 and 10,000 stored messages and
measures, interleaved across the sizes so every ratio comes from the same conditions of this one run:

  (a) a cold context build: a fresh ``HistoryStore(cache_size=0).window(...)`` with the budget a turn of
      gpt-4o-mini uses (128,000 - max_output 1,024 - system/user/priming) and with an 8,000-token cap;
  (b) a warm build: the same call on a store that already caches the conversation's window;
  (c) a whole turn, ``ConversationService.handle``, with ``history_max_tokens=8000``, through the real OpenAI
      SDK and real HTTP to the loopback fake of the API (tests/fakes/openai_api.py).

Every timed turn sees exactly the seeded number of messages: the two messages a turn stores are deleted
afterwards and the window cache is re-warmed, outside the timing. Nothing is asserted about absolute times.

Run from the repository root:  python -m bench.context_cost  (or  python bench/context_cost.py)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import itertools
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select

from core.db.migrate import upgrade
from core.db.models import Message
from core.db.repositories import ConversationRepository
from core.db.session import Database
from core.domain.types import ConversationKey
from core.llm.tokens import REPLY_PRIMING, TokenCounter, context_window
from core.turn.history import HistoryStore, wire_message
from core.turn.service import ConversationService, TurnConfig, TurnOutcome

REPO = Path(__file__).resolve().parents[1]

MODEL = "gpt-4o-mini"
MAX_OUTPUT_TOKENS = 1024
CAPPED_BUDGET = 8_000
SYSTEM_PROMPT = (
    "You are Threadwise, a helpful assistant in a team chat. Answer concisely and use Markdown sparingly."
)
SIZES = (10, 1_000, 10_000)
SEED = 20240611
INSERT_BATCH = 2_000
MESSAGES = Message.metadata.tables["messages"]  # Core executemany: the ORM bulk path inserts row by row

_VOCABULARY = (
    "the a we it this that our your their team service deploy release build test query index table cache "
    "window thread message reply model token budget latency request response error retry timeout queue "
    "worker database migration schema column row page cursor limit offset user admin channel workspace "
    "config setting value default option flag feature branch merge review commit patch version update "
    "should could would might will can need want think know see check run try fix add remove keep move "
    "make use read write send load store count trim start stop wait close open return raise handle "
    "because so but and or if when while after before then now still already again also just only "
    "probably maybe really quite very more less most first last next previous new old same other "
    "small large slow fast safe clear simple exact whole every each some many few all none "
    "today tomorrow yesterday morning afternoon week sprint meeting customer incident dashboard metric "
    "alert log trace graph chart report summary note idea question answer example problem reason result"
)
_WORDS = tuple(_VOCABULARY.split())


def _sentence(rng: random.Random, words: int) -> str:
    picked = rng.choices(_WORDS, k=words)
    text = " ".join(picked)
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", "?", "!"))


def realistic_text(rng: random.Random) -> str:
    """20-60 words of chat-like English in sentences of 5-14 words."""
    target = rng.randint(20, 60)
    sentences: list[str] = []
    written = 0
    while written < target:
        length = min(rng.randint(5, 14), target - written)
        sentences.append(_sentence(rng, max(length, 1)))
        written += length
    return " ".join(sentences)


def conversation_key(size: int) -> ConversationKey:
    # The same shape as tests.support.key(thread), so tests.support.incoming(..., thread=...) finds it.
    return ConversationKey("console", "W1", "C1", thread_name(size))


def thread_name(size: int) -> str:
    return f"bench-{size}"


@dataclass(slots=True)
class Seeded:
    size: int
    conversation_id: int
    last_message_id: int
    tokens: int


async def seed(
    db: Database, counter: TokenCounter, sizes: Sequence[int], rng: random.Random
) -> dict[int, Seeded]:
    """One conversation per size, alternating user/assistant messages, inserted with executemany."""
    encoding = counter.encoding_for(MODEL)
    seeded: dict[int, Seeded] = {}
    start = datetime.now(UTC) - timedelta(days=30)
    for size in sizes:
        async with db.unit_of_work() as session:
            conversation = await ConversationRepository(session).get_or_create(conversation_key(size))
            conversation_id = conversation.id
            rows: list[dict[str, Any]] = []
            total_tokens = 0
            for index in range(size):
                role = "user" if index % 2 == 0 else "assistant"
                parts = [{"type": "text", "text": realistic_text(rng)}]
                tokens = counter.count_message(MODEL, wire_message(role, parts), [])
                total_tokens += tokens
                rows.append(
                    {
                        "conversation_id": conversation_id,
                        "role": role,
                        "content": parts,
                        "tool_calls": None,
                        "tool_call_id": None,
                        "model": MODEL if role == "assistant" else None,
                        "token_count": tokens,
                        "token_encoding": encoding,
                        "status": "ok",
                        "user_id": "U1" if role == "user" else None,
                        "event_id": f"seed-{size}-{index}" if role == "user" else None,
                        "created_at": start + timedelta(seconds=index),
                    }
                )
            for offset in range(0, len(rows), INSERT_BATCH):
                await session.execute(insert(MESSAGES), rows[offset : offset + INSERT_BATCH])
            last = await session.execute(
                select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
            )
            last_id = last.scalar_one()
        seeded[size] = Seeded(size, conversation_id, last_id, total_tokens)
    return seeded


@dataclass(slots=True)
class Row:
    """One measurement at one size."""

    measurement: str
    size: int
    samples: list[float] = field(default_factory=list)  # seconds
    window_msgs: int = 0
    window_tokens: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def per_second(self) -> float:
        return len(self.samples) / sum(self.samples)


Op = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Plan:
    reps: int  # timed rounds wanted
    warmup: int  # untimed rounds first (cut short after a tenth of max_seconds, at least 2)
    max_seconds: float  # a measurement stops early after this long, once it has min_reps rounds
    min_reps: int = 20


async def interleaved(
    sizes: Sequence[int], plan: Plan, op: Op, reset: Op | None = None
) -> dict[int, list[float]]:
    """Time ``op(size)`` per size, round after round, rotating the order of the sizes in each round."""
    samples: dict[int, list[float]] = {size: [] for size in sizes}

    async def one_round(number: int, record: bool) -> None:
        shift = number % len(sizes)
        for size in (*sizes[shift:], *sizes[:shift]):
            started = time.perf_counter()
            await op(size)
            elapsed = time.perf_counter() - started
            if reset is not None:
                await reset(size)
            if record:
                samples[size].append(elapsed)

    gc.collect()
    began = time.perf_counter()
    rounds = 0
    while rounds < plan.warmup and (rounds < 2 or time.perf_counter() - began < plan.max_seconds / 10):
        await one_round(rounds, record=False)
        rounds += 1
    began = time.perf_counter()
    timed = 0
    while timed < plan.reps and (timed < plan.min_reps or time.perf_counter() - began < plan.max_seconds):
        await one_round(rounds + timed, record=True)
        timed += 1
    return samples


async def bench_builds(
    db: Database,
    counter: TokenCounter,
    seeded: dict[int, Seeded],
    budgets: dict[str, int],
    plan: Plan,
) -> list[Row]:
    sizes = tuple(seeded)
    rows: list[Row] = []
    for label, budget in budgets.items():
        # The window each build returns, for the table (and a check that cold and warm agree).
        shape: dict[int, tuple[int, int, int | None]] = {}
        for size, info in seeded.items():
            entries, last_id = await HistoryStore(db, counter, cache_size=0).window(
                info.conversation_id, MODEL, budget
            )
            shape[size] = (len(entries), sum(entry.tokens for entry in entries), last_id)

        async def cold(size: int, budget: int = budget) -> None:
            store = HistoryStore(db, counter, cache_size=0)
            await store.window(seeded[size].conversation_id, MODEL, budget)

        warm_store = HistoryStore(db, counter, cache_size=256)
        for size, info in seeded.items():
            entries, last_id = await warm_store.window(info.conversation_id, MODEL, budget)
            assert (len(entries), sum(e.tokens for e in entries), last_id) == shape[size]

        async def warm(size: int, budget: int = budget, store: HistoryStore = warm_store) -> None:
            await store.window(seeded[size].conversation_id, MODEL, budget)

        for kind, op in (("cold", cold), ("warm", warm)):
            timed = await interleaved(sizes, plan, op)
            for size in sizes:
                msgs, tokens, _ = shape[size]
                rows.append(Row(f"({'a' if kind == 'cold' else 'b'}) {kind} build, {label}", size))
                rows[-1].samples = timed[size]
                rows[-1].window_msgs, rows[-1].window_tokens = msgs, tokens
    rows.sort(key=lambda row: row.measurement[:3])  # (a) rows, then (b) rows; stable within
    return rows


def _ensure_repo_importable() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


async def bench_turns(
    db: Database,
    counter: TokenCounter,
    seeded: dict[int, Seeded],
    user_texts: Sequence[str],
    plan: Plan,
) -> list[Row]:
    _ensure_repo_importable()
    from tests.fakes.openai_api import FakeOpenAI
    from tests.support import RecordingReplier, incoming, make_llm

    sizes = tuple(seeded)
    config = TurnConfig(
        default_model=MODEL,
        system_prompt=SYSTEM_PROMPT,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        history_max_tokens=CAPPED_BUDGET,
    )
    history = HistoryStore(db, counter, cache_size=256)
    sent: dict[int, tuple[int, int]] = {}
    async with FakeOpenAI() as fake:
        llm = make_llm(fake.base_url, timeout=30.0, max_retries=0)
        service = ConversationService(database=db, llm=llm, counter=counter, config=config, history=history)
        numbers = itertools.count()

        async def turn(size: int) -> None:
            number = next(numbers)
            text = user_texts[number % len(user_texts)]
            replier = RecordingReplier()
            message = incoming(text, f"bench-turn-{size}-{number}", thread=thread_name(size))
            outcome = await service.handle(message, replier)
            if outcome is not TurnOutcome.ANSWERED or not replier.finished:
                raise RuntimeError(f"turn at {size} messages was not answered: {outcome}, {replier.errors}")

        async def reset(size: int) -> None:
            info = seeded[size]
            if size not in sent:  # the history the model was sent (the same every turn: state is reset)
                history_sent = fake.chat_requests()[-1]["messages"][1:-1]  # minus system and new user message
                tokens = sum(counter.count_message(MODEL, wire, []) for wire in history_sent)
                sent[size] = (len(history_sent), tokens)
            fake.requests.clear()
            async with db.unit_of_work() as session:
                await session.execute(
                    delete(Message).where(
                        Message.conversation_id == info.conversation_id, Message.id > info.last_message_id
                    )
                )
            history.forget(info.conversation_id)
            await history.window(info.conversation_id, MODEL, CAPPED_BUDGET)

        for size in sizes:  # the cache holds each window before the first turn, as in a running service
            await history.window(seeded[size].conversation_id, MODEL, CAPPED_BUDGET)
        timed = await interleaved(sizes, plan, turn, reset)
        await llm.close()
    rows: list[Row] = []
    for size in sizes:
        row = Row("(c) whole turn, capped 8,000", size, timed[size])
        row.window_msgs, row.window_tokens = sent[size][0], sent[size][1]
        rows.append(row)
    return rows


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _ratio(numerator: float, denominator: float) -> str:
    return f"x{numerator / denominator:.2f}"


def report(rows: Sequence[Row], sizes: Sequence[int]) -> list[str]:
    header = (
        f"{'measurement':<34}{'stored':>8}{'window msgs':>13}{'tokens':>9}"
        f"{'n':>5}{'median ms':>11}{'p95 ms':>10}{'per s':>9}"
    )
    lines = [header, "-" * len(header)]
    measurements = list(dict.fromkeys(row.measurement for row in rows))
    by_key = {(row.measurement, row.size): row for row in rows}
    for measurement in measurements:
        for size in sizes:
            row = by_key[(measurement, size)]
            lines.append(
                f"{measurement if size == sizes[0] else '':<34}{size:>8,}{row.window_msgs:>13,}"
                f"{row.window_tokens:>9,}{len(row.samples):>5}{_ms(row.median):>11}{_ms(row.p95):>10}"
                f"{row.per_second:>9,.0f}"
            )
    largest, smallest, middle = sizes[-1], sizes[0], sizes[-2]
    also = f" (and {largest:,} / {middle:,})" if middle != smallest else ""
    lines += ["", f"ratios {largest:,} / {smallest:,} stored messages{also}, measured in this run:"]
    for measurement in measurements:
        big, small, mid = (by_key[(measurement, size)] for size in (largest, smallest, middle))
        line = (
            f"  {measurement:<32} median {_ratio(big.median, small.median):>8}   p95 "
            f"{_ratio(big.p95, small.p95):>8}"
        )
        if middle != smallest:
            line += (
                f"   ({largest:,}/{middle:,}: median {_ratio(big.median, mid.median):>6}, "
                f"p95 {_ratio(big.p95, mid.p95):>6})"
            )
        if measurement.startswith("(c)"):
            line += f"   turns/s {small.per_second:,.0f} vs {big.per_second:,.0f}"
        lines.append(line)
    return lines


def footer(rows: Sequence[Row], sizes: Sequence[int]) -> list[str]:
    """What the ratios mean, with this run's window sizes."""
    windows = {(row.measurement, row.size): (row.window_msgs, row.window_tokens) for row in rows}
    full = next(row.measurement for row in rows if row.measurement.startswith("(a) cold build, full"))
    capped = next(row.measurement for row in rows if row.measurement.startswith("(a) cold build, capped"))
    large, small, middle = sizes[-1], sizes[0], sizes[-2]
    (fl_m, fl_t), (fs_m, fs_t), (fm_m, _) = (windows[(full, size)] for size in (large, small, middle))
    (cl_m, cl_t), (cs_m, _), (cm_m, _) = (windows[(capped, size)] for size in (large, small, middle))
    text = (
        "What the ratios mean. History is read newest-first only until the budget is used up, so a context "
        "build costs what the window it reads costs, not what the thread stores. "
        f"Full window: the {large:,}-message conversation sends {fl_m:,} messages ({fl_t:,} tokens) of "
        f"history while the {small:,}-message one has {fs_m:,} messages ({fs_t:,} tokens) to send, so the "
        f"large {large:,}/{small:,} ratio of the cold full-window build is that extra history, which the "
        "model is sent as well: it is inherent, and bounded by the window"
    )
    if middle != small:
        text += (
            f" (from {middle:,} to {large:,} stored messages the window grows only from {fm_m:,} to "
            f"{fl_m:,} messages)"
        )
    text += f". With the {CAPPED_BUDGET:,}-token cap the window is at most {CAPPED_BUDGET:,} tokens"
    if middle != small:
        text += (
            f" and the same at {middle:,} and {large:,} stored messages ({cm_m:,} vs {cl_m:,} messages), so "
            "the cost is flat"
        )
    text += (
        f"; the cold {large:,}/{small:,} ratio there is {cl_m:,} messages read ({cl_t:,} tokens) versus "
        f"{cs_m:,}, not thread length. "
        "The warm build (each conversation's window cached, as in a running service) is one indexed "
        "max(id) query plus an in-memory trim at every length, and a whole capped turn (event claim, "
        "history, HTTP round trip to the fake API, streaming, commit) should cost the same at "
        f"{small:,} and {large:,} stored messages: ratios near x1 on those rows bear out the design's claim, "
        "ratios well above x1 would contradict it. "
        'For (c), "window" is the history the model was sent. Times are of this machine and this run '
        "only: compare ratios, not absolute numbers; p95 ratios are noisier than medians."
    )
    return textwrap.wrap(text, width=110)


def _default_tiktoken_cache() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    candidate = REPO.parent / "shared" / "tiktoken"
    if candidate.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(candidate)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


async def run(args: argparse.Namespace) -> int:
    sizes = tuple(sorted(set(args.sizes)))
    rng = random.Random(SEED)
    counter = TokenCounter()
    encoding = await counter.preload(MODEL)
    user_texts = [realistic_text(rng) for _ in range(64)]
    system_tokens = counter.count_message(MODEL, {"role": "system", "content": SYSTEM_PROMPT}, [])
    user_tokens = statistics.median_low(
        counter.count_message(MODEL, {"role": "user", "content": text}, []) for text in user_texts
    )
    fixed = system_tokens + user_tokens + REPLY_PRIMING
    full_budget = context_window(MODEL) - MAX_OUTPUT_TOKENS - fixed
    budgets = {f"full {full_budget // 1000}k": full_budget, "capped 8,000": CAPPED_BUDGET}

    print("context_cost: the cost of building a turn's context, by number of stored messages")
    print(
        f"  {MODEL}, window {context_window(MODEL):,}, max_output {MAX_OUTPUT_TOKENS:,}, fixed part {fixed} "
        f"(system {system_tokens} + user {user_tokens} + priming {REPLY_PRIMING}) -> full budget "
        f"{full_budget:,} tokens; capped budget {CAPPED_BUDGET:,}"
    )
    print(
        f"  token encoding: {encoding}; Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {_version('sqlalchemy')}, openai {_version('openai')}, {os.cpu_count()} CPUs"
    )
    if encoding == "estimate":
        print("  WARNING: tiktoken tables not found (set TIKTOKEN_CACHE_DIR); token counts are estimates")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="threadwise-bench-") as tmp:
        db = Database.from_url(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        try:
            await upgrade(db.engine)
            started = time.perf_counter()
            seeded = await seed(db, counter, sizes, rng)
            stored = sum(info.size for info in seeded.values())
            print(
                f"  seeded {stored:,} messages in {len(sizes)} conversations in "
                f"{time.perf_counter() - started:.1f} s (SQLite WAL, temp dir); conversation tokens: "
                + ", ".join(f"{size:,} msgs = {info.tokens:,}" for size, info in seeded.items())
            )
            print(
                f"  {args.reps} timed rounds per measurement after {args.warmup} warm-up, sizes interleaved "
                f"in each round; a measurement stops early after {args.max_seconds:g} s (n = rounds done)"
            )
            print()
            plan = Plan(args.reps, args.warmup, args.max_seconds, min(20, args.reps))
            rows = await bench_builds(db, counter, seeded, budgets, plan)
            rows += await bench_turns(db, counter, seeded, user_texts, plan)
        finally:
            await db.close()
    for line in report(rows, sizes):
        print(line)
    print()
    for line in footer(rows, sizes):
        print(line)
    print(f"\n(total {time.perf_counter() - began:.1f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=200, help="timed repetitions per cell (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds first (default 20)")
    parser.add_argument(
        "--max-seconds", type=float, default=30.0, help="time limit per measurement (default 30)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="stored messages per conversation"
    )
    args = parser.parse_args(argv)
    if args.reps < 1 or args.warmup < 0 or args.max_seconds <= 0:
        parser.error("need --reps >= 1, --warmup >= 0 and --max-seconds > 0")
    if len(set(args.sizes)) < 2 or min(args.sizes) < 1:
        parser.error("need at least two different sizes >= 1")
    _default_tiktoken_cache()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
