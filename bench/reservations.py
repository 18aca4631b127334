"""Budget reservation throughput: reserve + settle (the budget work of one turn) per second, on SQLite and
PostgreSQL, sequential and with 50 concurrent turns, one user (contended rows) vs many users.

Usage: python bench/reservations.py [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]
(PostgreSQL also comes from TEST_DATABASE_URL; its public schema is dropped and recreated.) Prints turns/s
and ratios measured in this one run; absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from core.db import migrate
from core.db.repositories import ConversationRepository
from core.db.session import Database, create_engine
from core.domain.ports import CallPlan, CallUsage
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.llm.types import Usage
from core.money.budgets import Budgets, defaults_from
from core.money.pricing import ModelPrice, PriceTable, usd
from core.settings import LimitSettings

PRICES = PriceTable(fallback=ModelPrice(usd("10"), usd("10"), usd("40")), image_fallback=usd("0.25"))
LIMITS = LimitSettings(  # type: ignore[call-arg]
    _env_file=None,
    user_daily_budget_usd=Decimal("1000"),
    user_monthly_budget_usd=Decimal("10000"),
    channel_daily_budget_usd=Decimal("1000"),
    workspace_monthly_budget_usd=Decimal("10000"),
    global_daily_budget_usd=Decimal("100000"),
)
CASES = (
    ("sequential", 1, 300, True),
    ("50 concurrent, one user", 50, 8, True),
    ("50 concurrent, 50 users", 50, 8, False),
)


def message(user: str, index: int) -> IncomingMessage:
    return IncomingMessage(
        key=ConversationKey("slack", "T1", "C1", f"thread-{index}"),
        user=ChatUser("slack", user, user),
        text="question",
        event_id=f"e-{user}-{index}",
        received_at=datetime.now(UTC),
    )


async def measure(database: Database, *, workers: int, per_worker: int, shared_user: bool) -> float:
    budgets = Budgets(database, PRICES, defaults_from(LIMITS))
    async with database.unit_of_work() as session:  # ledger rows point at a conversation
        conversation_id = (await ConversationRepository(session).get_or_create(message("U", 0).key)).id

    async def worker(number: int) -> None:
        user = "U-shared" if shared_user else f"U{number}"
        for index in range(per_worker):
            plan = CallPlan(message(user, number * 10_000 + index), "gpt-4o-mini", 500, 1024, 1)
            hold = await budgets.reserve(plan)
            async with database.transaction() as connection:
                usage = CallUsage("gpt-4o-mini", Usage(500, 0, 120), conversation_id)
                await budgets.settle_in(connection, hold, [usage])

    started = time.perf_counter()
    await asyncio.gather(*(worker(number) for number in range(workers)))
    return workers * per_worker / (time.perf_counter() - started)


async def fresh(url: str) -> Database:
    if url.startswith("postgresql"):
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
    database = Database.from_url(url)
    await migrate.upgrade(database.engine)
    return database


async def run(name: str, url_for: dict[str, str]) -> dict[str, float]:
    results = {}
    for label, workers, per_worker, shared in CASES:
        database = await fresh(url_for[label])
        await measure(database, workers=1, per_worker=20, shared_user=True)  # warm-up
        results[label] = await measure(database, workers=workers, per_worker=per_worker, shared_user=shared)
        await database.close()
        print(f"{name:<10} {label:<26} {results[label]:8.0f} turns/s", flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description="budget reservation throughput")
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = {
            label: f"sqlite+aiosqlite:///{Path(folder) / f'bench-{n}.db'}"
            for n, (label, *_) in enumerate(CASES)
        }
        sqlite = await run("SQLite", urls)
    postgres = None
    if args.postgres:
        url = args.postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
        postgres = await run("PostgreSQL", {label: url for label, *_ in CASES})
    print()
    print("Each turn holds against 5 limited budgets (user day and month, channel day, workspace month,")
    print("global day), then settles with a ledger row: two transactions. Ratios from this run:")
    if postgres:
        for label in sqlite:
            print(f"  {label:<26} PostgreSQL/SQLite = {postgres[label] / sqlite[label]:.2f}")
    for name, results in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        if results:
            ratio = results["50 concurrent, 50 users"] / results["50 concurrent, one user"]
            print(f"  {name}: 50 users / one user = {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
