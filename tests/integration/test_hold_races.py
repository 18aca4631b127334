"""A budget hold is given back once, whoever gives it back (the turn's settlement, a failed turn's release,
crash recovery's ``release_event``, the sweep of expired holds) and however two of them interleave on
PostgreSQL, replicas on one database (two engines): the first party is held right after its first statement on
the reservations while the second runs until it finishes or waits for a lock, then both finish. SQLite
serialises writers (``BEGIN IMMEDIATE``), so there the two run one after the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.util import await_only

from core.db.models import BudgetCounter, Reservation
from core.db.repositories import ConversationRepository
from core.db.session import Database
from core.domain.errors import QuotaExceeded
from core.domain.ports import CallPlan, CallUsage, Hold
from core.llm.types import Usage
from core.money.budgets import Budgets, defaults_from
from core.turn.store import SqlTurnStore
from tests.integration.test_budgets import MAX_OUTPUT, MINI, limits, worst_micros
from tests.support import Clock, incoming

START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)
PROMPT = 100
KEEP_SECONDS = 300.0
USAGE = Usage(prompt_tokens=PROMPT, completion_tokens=10)  # what the turn's one call used
SPENT_MICROS = MINI.chat_cost("gpt-4o-mini", input_tokens=PROMPT, cached_tokens=0, output_tokens=10).micros


class Replica:
    """One replica's Budgets (and turn store) on its own engine, its clock ``minutes`` past the hold."""

    def __init__(
        self, database: Database, minutes: float, budget_micros: int, spent: list[CallUsage]
    ) -> None:
        self.database = database
        self.spent = spent
        self.clock = Clock(START + timedelta(minutes=minutes))
        budget = Decimal(budget_micros) / 10**6
        self.budgets = Budgets(
            database,
            MINI,
            defaults_from(limits(user_daily_budget_usd=budget)),
            clock=self.clock,
            reservation_ttl=TTL,
        )
        self.store = SqlTurnStore(database, self.budgets)

    async def act(self, party: str, hold: Hold) -> object:
        if party == "settle":  # the turn's persist: its spend charged, its hold swapped for it
            return await self.store.charge(hold, self.spent)
        if party == "release":  # the turn failed
            return await self.budgets.release(hold)
        if party == "release_event":  # crash recovery on another replica
            return await self.budgets.release_event(hold.message.event_id)
        if party == "expire":  # the sweep of holds left past their TTL
            return await self.budgets.expire()
        if party == "keep":  # the turn waits for a tool approval: its hold must outlive the wait
            return await self.budgets.keep(hold, KEEP_SECONDS)
        if party == "extend":  # the turn raises its hold before a tool round
            try:
                return await self.budgets.extend(hold, self.spent, plan("e1", rounds=1))
            except QuotaExceeded:  # the hold expired meanwhile: the turn answers within what it has
                return None
        raise AssertionError(party)

    def pause_after_first_reservation_statement(self) -> tuple[asyncio.Event, asyncio.Event]:
        """Events (reached, go): this replica's next statement on ``reservations`` waits for ``go`` once it
        has run, inside its transaction (the statement's row locks kept)."""
        reached, go = asyncio.Event(), asyncio.Event()

        def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "reservations" in statement and not reached.is_set():
                reached.set()
                await_only(go.wait())  # inside the statement's greenlet: the event loop runs on

        event.listen(self.database.engine.sync_engine, "after_cursor_execute", after)
        return reached, go


def plan(event_id: str, *, rounds: int = 1) -> CallPlan:
    return CallPlan(incoming("x", event_id), "gpt-4o-mini", PROMPT, MAX_OUTPUT, rounds, MAX_OUTPUT)


@pytest.fixture
async def second_engine(database: Database, database_url: str) -> AsyncIterator[Database]:
    if database.is_sqlite:
        yield database
        return
    other = Database.from_url(database_url)
    yield other
    await other.close()


async def finished_or_waiting(task: asyncio.Task[object], database: Database) -> None:
    """Until ``task`` is done or a transaction on the database waits for a row lock (the paused one's)."""
    async with asyncio.timeout(60):  # a hang guard, not a measurement
        while not task.done():
            async with database.reading() as connection:
                waiting = await connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                )
            if waiting:
                return
            await asyncio.wait({task}, timeout=0.02)


async def counter_and_holds(database: Database) -> tuple[tuple[int, int], int]:
    async with database.reader() as session:
        counter = (await session.execute(select(BudgetCounter))).scalar_one()
        holds = await session.scalar(select(func.count()).select_from(Reservation))
    return (counter.spent_micros, counter.reserved_micros), int(holds or 0)


async def turns_let_through(budgets: Budgets) -> int:
    """How many more one-call turns the budget lets through (each holding its worst case)."""
    allowed = 0
    for number in range(3):
        try:
            await budgets.reserve(plan(f"next{number}"))
        except QuotaExceeded:
            return allowed
        allowed += 1
    return allowed


PAIRS = [
    ("expire", "settle"),
    ("settle", "expire"),
    ("expire", "release"),
    ("release", "expire"),
    ("expire", "release_event"),
    ("release_event", "settle"),
    ("settle", "release_event"),
    ("release", "release_event"),
    ("expire", "expire"),
    ("expire", "extend"),
    ("extend", "expire"),
    ("keep", "expire"),
]
MINUTE = {"expire": 11, "extend": 9, "keep": 9}  # past the hold's TTL (10); shortly before it: all others 0


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}-then-{b}" for a, b in PAIRS])
async def test_a_hold_given_back_by_two_parties_at_once_is_given_back_once(
    database: Database, second_engine: Database, first: str, second: str
) -> None:
    # One call's worst case; with an extension, what the turn spent on top (what the extension holds more).
    extends = "extend" in (first, second)
    budget = worst_micros(PROMPT) + (SPENT_MICROS if extends else 0)
    async with database.unit_of_work() as session:
        conversation = await ConversationRepository(session).get_or_create(plan("e1").message.key)
    usages = [CallUsage("gpt-4o-mini", USAGE, conversation.id)]
    a = Replica(database, MINUTE.get(first, 0), budget, usages)
    b = Replica(second_engine, MINUTE.get(second, 0), budget, usages)
    hold = await Replica(database, 0, budget, usages).budgets.reserve(plan("e1"))
    assert hold.reservation_id is not None and hold.micros == worst_micros(PROMPT)

    if database.is_sqlite:  # writers serialised: no interleaving to force
        await a.act(first, hold)
        await b.act(second, hold)
    else:
        reached, go = a.pause_after_first_reservation_statement()
        first_task = asyncio.create_task(a.act(first, hold))
        await reached.wait()
        second_task = asyncio.create_task(b.act(second, hold))
        await finished_or_waiting(second_task, database)
        go.set()
        await asyncio.gather(first_task, second_task)
    # A hold kept or extended before the sweep came is not the sweep's: the turn still has it.
    still_held = first in ("keep", "extend")
    assert (await counter_and_holds(database))[1] == (1 if still_held else 0)
    if "settle" not in (first, second):  # the turn ends: its spend is charged, its hold (if any) swapped
        await b.store.charge(hold, usages)

    (spent, reserved), holds = await counter_and_holds(database)
    # As a user sees it: what is left covers one more call only when the budget had room for the extension
    # (a hold given back twice lets more through; one left on the counter refuses what it should allow).
    let_through = await turns_let_through(Replica(database, 12, budget, usages).budgets)
    assert (spent, reserved, holds, let_through) == (SPENT_MICROS, 0, 0, 1 if extends else 0)
