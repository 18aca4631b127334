"""SQL statements and transactions per turn, counted on the engine (SQLAlchemy events), for a follow-up in
an existing conversation with a user budget set: what a turn costs the database.

    TIKTOKEN_CACHE_DIR=../shared/tiktoken python bench/turn_statements.py [--database-url URL] [--turns N]
        [--guards] [--cache-ttl SECONDS] [--new-threads] [--show]

``--new-threads`` makes each turn the first of a new thread (a mention in a channel; what bench/lean.py
sends) instead of a follow-up. ``--guards`` adds what ``serve`` runs with moderation on: the ban check before
the turn (the adapters' admission) and in it, input and output moderation with their audit rows, the
channel's policy (moderation overrides) and the channel's persona (both cached per replica, trusted for
``--cache-ttl`` seconds, 60 as in serve; 0 shows what they cost a turn when read every time).

The reply is "posted" on a platform (the replier reports where it is), as Slack and Discord do, so the
write that lets crash recovery find a reply is counted too. Prints the statements by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.admin.personas import Personas
from core.db import migrate
from core.db.replica_cache import SAFETY_TTL
from core.db.session import Database
from core.domain.ports import TurnGuard
from core.guards.audit import ModerationAudit
from core.guards.bans import BanGuard
from core.guards.channel_policy import ChannelPolicies
from core.guards.moderation import ModerationGuard, ModerationPolicy, Moderator
from core.guards.output_moderation import OutputModeration
from core.money.budgets import Budgets
from core.money.pricing import ModelPrice, PriceTable, usd
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingReplier, incoming, make_llm, make_service


class PostedReplier(RecordingReplier):
    """A replier whose reply lands on a platform: it reports where, once."""

    def track(self, on_posted: Callable[[dict[str, str]], None]) -> None:
        self._on_posted = on_posted

    async def start(self) -> None:
        await super().start()
        on_posted = getattr(self, "_on_posted", None)
        if on_posted is not None:
            on_posted({"channel": "C1", "ts": "1.1"})


async def run(
    url: str,
    turns: int,
    guarded: bool,
    show: bool = False,
    new_threads: bool = False,
    cache_ttl: float = SAFETY_TTL,
    no_limits: bool = False,
) -> None:
    database = Database.from_url(url)
    await migrate.upgrade(database.engine)
    statements: collections.Counter[str] = collections.Counter()
    transactions = 0
    counting = False
    last_turn: list[str] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if counting:
            statements[statement.split(None, 1)[0].upper()] += 1
            last_turn.append(" ".join(statement.split()))

    def on_begin(conn: Any) -> None:
        nonlocal transactions
        if counting:
            transactions += 1
            last_turn.append("BEGIN")

    for engine in database.engines:  # on SQLite the hot path's own too
        event.listen(engine.sync_engine, "before_cursor_execute", on_statement)
        event.listen(engine.sync_engine, "begin", on_begin)
    prices = PriceTable(fallback=ModelPrice(usd("1"), usd("1"), usd("4")), image_fallback=usd("0.25"))
    async with FakeOpenAI(api_key="test-key") as fake:
        llm = make_llm(fake.base_url)
        limits = {} if no_limits else {("user", "day"): (usd("100"), None)}
        budgets = Budgets(database, prices, limits)
        run_id = uuid.uuid4().hex[:12]
        bans = BanGuard(database)
        guards: list[TurnGuard] = []
        output = None
        personas = None
        if guarded:
            moderator = Moderator(llm.sdk, ModerationPolicy())
            audit = ModerationAudit(database)
            guards = [bans, ModerationGuard(moderator, audit, ChannelPolicies(database, ttl=cache_ttl))]
            output = OutputModeration(moderator, audit)
            personas = Personas(database, ttl=cache_ttl)
        service = make_service(
            database, llm, budget=budgets, guards=guards, output_moderation=output, personas=personas
        )

        async def turn(text: str, event_id: str) -> None:
            thread = f"{run_id}-{event_id}" if new_threads else run_id
            message = incoming(text, f"{run_id}-{event_id}", thread=thread)  # a database may be reused
            if guarded:
                await bans.check(message)  # the adapters' admission, before the turn
            await service.handle(message, PostedReplier())

        await turn("warm up", "warm")
        await turn("warm up again", "warm2")
        counting = True
        for index in range(turns):
            last_turn.clear()
            await turn(f"question {index}", f"q{index}")
        counting = False
        await llm.close()
    await database.close()
    total = sum(statements.values())
    name = database.engine.dialect.name
    label = f"{name} with guards" if guarded else name
    label += ", new threads" if new_threads else ""
    print(f"{label}: {total / turns:.1f} statements, {transactions / turns:.1f} transactions per turn")
    for kind, count in statements.most_common():
        print(f"  {kind:<8} {count / turns:.1f}")
    if show:
        print("the last turn's statements, in order:")
        for statement in last_turn:
            print(f"  {statement[:150]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--guards", action="store_true", help="ban check and moderation, as serve runs them")
    parser.add_argument("--cache-ttl", type=float, default=SAFETY_TTL, help="policy and persona cache, s")
    parser.add_argument("--new-threads", action="store_true", help="each turn the first of a new thread")
    parser.add_argument(
        "--no-limits", action="store_true", help="no default budget (as serve has unless one is configured)"
    )
    parser.add_argument("--show", action="store_true", help="print the last turn's statements in order")
    args = parser.parse_args()
    options = (args.turns, args.guards, args.show, args.new_threads, args.cache_ttl, args.no_limits)
    if args.database_url:
        asyncio.run(run(args.database_url, *options))
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(f"sqlite+aiosqlite:///{folder}/bench.db", *options))


if __name__ == "__main__":
    main()
