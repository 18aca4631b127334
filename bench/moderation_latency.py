"""What latency does moderation add to a turn?

Whole turns through ``ConversationService.handle`` (real OpenAI SDK, real HTTP to the loopback fake of the API
in tests/fakes/openai_api.py, a fresh migrated SQLite database) in four set-ups, interleaved so every
comparison comes from the same conditions of this one run:

  none      no moderation
  input     the user's message is checked before the model call (one /v1/moderations request)
  in+out    input, and the answer checked paragraph by paragraph while it streams (the default)
  +redact   in+out with redaction and injection signals in front (the full default guard chain)

Two endpoint latencies: the loopback fake as it is (~1 ms), and the fake answering moderation after a delay
(default 80 ms, about what OpenAI's endpoint takes) while the answer streams in three paragraphs over ~300 ms,
to show that output checks overlap with the stream and only the last paragraph's check is waited for.
Reported: median and p95 of the time from handing a message to the service until the reply is finished, and
the added median against "none". Nothing is asserted about absolute times.

Run from the repository root:  python -m bench.moderation_latency  [--turns 60] [--delay 0.08]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if not os.environ.get("TIKTOKEN_CACHE_DIR") and (REPO.parent / "shared" / "tiktoken").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(REPO.parent / "shared" / "tiktoken")

from core.db.migrate import upgrade  # noqa: E402
from core.db.session import Database  # noqa: E402
from core.domain.ports import TurnGuard  # noqa: E402
from core.domain.types import ChatUser, ConversationKey, IncomingMessage  # noqa: E402
from core.guards.audit import ModerationAudit  # noqa: E402
from core.guards.chain import GuardChain  # noqa: E402
from core.guards.injection import InjectionGuard  # noqa: E402
from core.guards.moderation import ModerationGuard, ModerationPolicy, Moderator  # noqa: E402
from core.guards.output_moderation import OutputModeration  # noqa: E402
from core.guards.redaction import RedactionGuard  # noqa: E402
from core.guards.redactor import Redactor  # noqa: E402
from core.llm.client import LLMClient  # noqa: E402
from core.llm.tokens import TokenCounter  # noqa: E402
from core.turn.service import ConversationService, TurnConfig, TurnOutcome  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI, Reply  # noqa: E402
from tests.support import RecordingReplier  # noqa: E402

SETUPS = ("none", "input", "in+out", "+redact")
QUESTION = "Give me three short tips for writing release notes, one paragraph each."
ANSWER = "\n\n".join(
    [
        "Lead with what changed for the reader, not with how it was built.",
        "Group changes by who they affect, and link each one to its issue.",
        "End with anything the reader must do: migrations, new settings, removals.",
    ]
)


def build(setup: str, database: Database, llm: LLMClient, counter: TokenCounter) -> ConversationService:
    audit = ModerationAudit(database)
    moderator = Moderator(llm.sdk, ModerationPolicy())
    guards: list[TurnGuard] = []
    if setup == "+redact":
        guards += [RedactionGuard(Redactor(), audit), InjectionGuard(audit)]
    if setup != "none":
        guards.append(ModerationGuard(moderator, audit))
    output = OutputModeration(moderator, audit) if setup in ("in+out", "+redact") else None
    config = TurnConfig(default_model="gpt-4o-mini", system_prompt="You are a test.", max_output_tokens=256)
    return ConversationService(
        database=database,
        llm=llm,
        counter=counter,
        config=config,
        guards=GuardChain(guards),
        output_moderation=output,
    )


async def measure(
    fake: FakeOpenAI, services: dict[str, ConversationService], turns: int, chunk_delay: float
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {setup: [] for setup in services}
    user = ChatUser("console", "bench", "bench")
    for index in range(turns):
        for setup, service in services.items():  # interleaved: every set-up sees the same conditions
            fake.script(Reply(text=ANSWER, chunk_chars=24, chunk_delay=chunk_delay))
            key = ConversationKey("console", "bench", setup, f"t{index}")
            message = IncomingMessage(
                key, user, QUESTION, f"{setup}:{index}:{chunk_delay}", datetime.now(UTC)
            )
            replier = RecordingReplier()
            started = time.perf_counter()
            outcome = await service.handle(message, replier)
            timings[setup].append(time.perf_counter() - started)
            if outcome is not TurnOutcome.ANSWERED:
                raise SystemExit(f"{setup}: turn failed: {replier.errors}")
    return timings


def report(title: str, timings: dict[str, list[float]], warmup: int) -> None:
    print(f"\n{title}")
    print(f"  {'set-up':8} {'median ms':>10} {'p95 ms':>8} {'added ms':>9} {'ratio':>6}")
    base = statistics.median(timings["none"][warmup:])
    for setup in SETUPS:
        values = sorted(timings[setup][warmup:])
        median = statistics.median(values)
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(
            f"  {setup:8} {median * 1000:>10.1f} {p95 * 1000:>8.1f} {(median - base) * 1000:>+9.1f} "
            f"{median / base:>6.2f}"
        )


async def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60, help="timed turns per set-up and latency")
    parser.add_argument("--delay", type=float, default=0.08, help="simulated moderation latency, seconds")
    args = parser.parse_args(argv)
    warmup = max(3, args.turns // 10)
    with tempfile.TemporaryDirectory() as folder:
        database = Database.from_url(f"sqlite+aiosqlite:///{folder}/bench.db")
        await upgrade(database.engine)
        counter = TokenCounter()
        await counter.preload("gpt-4o-mini")
        async with FakeOpenAI() as fake:
            llm = LLMClient.create(api_key="test-key", base_url=fake.base_url, timeout=30, max_retries=0)
            services = {setup: build(setup, database, llm, counter) for setup in SETUPS}
            fast = await measure(fake, services, args.turns + warmup, chunk_delay=0.0)
            report("loopback fake, moderation answers at once, answer streamed at once", fast, warmup)
            fake.moderation_delay = args.delay
            slow = await measure(fake, services, args.turns + warmup, chunk_delay=0.012)
            report(
                f"moderation answers after {args.delay * 1000:.0f} ms, the answer streams over ~0.3 s",
                slow,
                warmup,
            )
            await llm.close()
        await database.engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
