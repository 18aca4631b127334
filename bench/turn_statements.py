"""SQL statements and transactions per turn, counted on the engine (SQLAlchemy events), for a follow-up in
an existing conversation with a user budget set: what a turn costs the database.

    TIKTOKEN_CACHE_DIR=../shared/tiktoken python bench/turn_statements.py [--database-url URL] [--turns N]

The reply is "posted" on a platform (the replier reports where it is), as Slack and Discord do, so the
write that lets crash recovery find a reply is counted too. Prints the statements by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.db import migrate
from core.db.session import Database
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


async def run(url: str, turns: int) -> None:
    database = Database.from_url(url)
    await migrate.upgrade(database.engine)
    statements: collections.Counter[str] = collections.Counter()
    transactions = 0
    counting = False

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if counting:
            statements[statement.split(None, 1)[0].upper()] += 1

    def on_begin(conn: Any) -> None:
        nonlocal transactions
        if counting:
            transactions += 1

    event.listen(database.engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(database.engine.sync_engine, "begin", on_begin)
    prices = PriceTable(fallback=ModelPrice(usd("1"), usd("1"), usd("4")), image_fallback=usd("0.25"))
    async with FakeOpenAI(api_key="test-key") as fake:
        llm = make_llm(fake.base_url)
        budgets = Budgets(database, prices, {("user", "day"): (usd("100"), None)})
        service = make_service(database, llm, budget=budgets)
        await service.handle(incoming("warm up", "warm", thread="T"), PostedReplier())
        await service.handle(incoming("warm up again", "warm2", thread="T"), PostedReplier())
        counting = True
        for index in range(turns):
            await service.handle(incoming(f"question {index}", f"q{index}", thread="T"), PostedReplier())
        counting = False
        await llm.close()
    await database.close()
    total = sum(statements.values())
    name = database.engine.dialect.name
    print(f"{name}: {total / turns:.1f} statements, {transactions / turns:.1f} transactions per turn")
    for kind, count in statements.most_common():
        print(f"  {kind:<8} {count / turns:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(run(args.database_url, args.turns))
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(f"sqlite+aiosqlite:///{folder}/bench.db", args.turns))


if __name__ == "__main__":
    main()
