"""Long threads that remember (issue 16, item 3), on a real database through the real SDK against the OpenAI
fake: a thread that outgrows its window keeps a fact from its first turn through a summary written by a
separate model call, the summary is updated incrementally, priced in the ledger and held against the budget
(a budget that cannot cover it means plain trimming, never an overspent turn), the thread is told once, and
with THREADWISE_HISTORY_SUMMARY=false the oldest turns are simply trimmed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from core.db.models import BudgetCounter, ConversationSummary, Reservation, UsageRecord
from core.db.session import Database
from core.llm.tokens import TokenCounter
from core.money.budgets import Budgets, defaults_from
from core.money.pricing import ModelPrice, PriceTable, usd
from core.turn.service import ConversationService, TurnConfig, TurnOutcome
from core.turn.summary import SUMMARISED_NOTE, SUMMARY_PREFIX, SUMMARY_SYSTEM
from tests.fakes.openai_api import FakeOpenAI, Fault, Hang, Reply, Script
from tests.integration.test_budgets import limits
from tests.support import RecordingReplier, incoming, key, make_llm

MODEL = "gpt-4o-mini"
SUMMARY_MODEL = "gpt-4o"
FIRST = "Remember this: the launch code is ZEBRA-42."
TURNS = 14
# Cheap answers, an expensive summary model: what the budget test turns on.
PRICES = PriceTable(
    {
        MODEL: ModelPrice(usd("1"), usd("1"), usd("1")),
        SUMMARY_MODEL: ModelPrice(usd("1000"), usd("1000"), usd("1000")),
    },
    fallback=ModelPrice(usd("10"), usd("10"), usd("40")),
    image_fallback=usd("0.25"),
)


def service(
    database: Database,
    fake: FakeOpenAI,
    *,
    summary: bool = True,
    budget: Budgets | None = None,
    turn_timeout: float | None = 120.0,
) -> ConversationService:
    config = TurnConfig(
        default_model=MODEL,
        system_prompt="You are a test assistant.",
        max_output_tokens=100,
        context_windows={MODEL: 420},  # room for about four turns of history next to the summary
        history_summary=summary,
        summary_model=SUMMARY_MODEL,
        summary_max_tokens=64,
        summary_input_tokens=2000,
        turn_timeout=turn_timeout,
    )
    return ConversationService(
        database=database, llm=make_llm(fake.base_url), counter=TokenCounter(), config=config, budget=budget
    )


@dataclass
class Model:
    """Answers turns with "ok N"; as the summariser, keeps the launch code when it reads it."""

    fail_summaries: bool = False
    hang_summaries: bool = False
    summaries: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> Script:
        if body["messages"][0]["content"] == SUMMARY_SYSTEM:
            self.summaries.append(body)
            if self.fail_summaries:
                return Fault(500)
            if self.hang_summaries:
                return Hang(60)
            read = body["messages"][1]["content"]
            keeps = "the launch code is ZEBRA-42" if "ZEBRA-42" in read else "nothing to keep"
            return Reply(text=f"Summary {len(self.summaries)}: {keeps}.")
        self.answers.append(body)
        return Reply(text=f"ok {len(self.answers)}")


async def run_thread(svc: ConversationService, turns: int = TURNS) -> list[RecordingReplier]:
    repliers = []
    for index in range(turns):
        text = FIRST if index == 0 else f"Turn {index}: tell me something short about topic {index}."
        replier = RecordingReplier()
        assert await svc.handle(incoming(text, f"e{index}"), replier) == TurnOutcome.ANSWERED
        repliers.append(replier)
    return repliers


def said(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"])


def notes(repliers: list[RecordingReplier]) -> int:
    return sum(SUMMARISED_NOTE in text for replier in repliers for text in replier.finished)


async def ledger_rows(database: Database) -> list[tuple[str, int, int, int]]:
    async with database.reader() as session:
        rows = (await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars().all()
    return [(r.model, r.input_tokens, r.output_tokens, r.cost_micros) for r in rows]


async def test_a_thread_past_its_window_keeps_its_first_fact_through_an_incremental_summary(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    budgets = Budgets(database, PRICES, defaults_from(limits(user_daily_budget_usd=Decimal("50"))))
    model = Model()
    fake_openai.responder = model
    repliers = await run_thread(service(database, fake_openai, budget=budgets))

    assert len(model.summaries) >= 2
    first, second = model.summaries[0], model.summaries[1]
    assert first["model"] == SUMMARY_MODEL and FIRST in said(first)  # the summary read the first turn
    assert "Summary 1: the launch code is ZEBRA-42." in said(second)  # incremental: the summary so far,
    assert FIRST not in said(second)  # not the original turns again
    last = model.answers[-1]
    assert FIRST not in said(last)  # the first turn itself fell out of the window long ago...
    summary = f"Summary {len(model.summaries)}: the launch code is ZEBRA-42."
    assert last["messages"][1] == {
        "role": "system",
        "content": SUMMARY_PREFIX + summary,
    }  # ...its fact did not
    assert notes(repliers) == 1  # told once

    rows = await ledger_rows(database)
    assert len(rows) == len(model.summaries) + len(model.answers)  # every call priced, the summaries too
    assert sum(row[0] == SUMMARY_MODEL for row in rows) == len(model.summaries)
    later = rows[next(i for i, row in enumerate(rows) if row[0] == SUMMARY_MODEL) :]
    # once past the window, a summary call folds in more than it must: not one at every turn
    assert sum(row[0] == SUMMARY_MODEL for row in later) < sum(row[0] == MODEL for row in later)
    async with database.reader() as session:
        spent = await session.scalar(select(func.sum(UsageRecord.cost_micros)))
        counters = (await session.execute(select(BudgetCounter))).scalars().all()
        holds = await session.scalar(select(func.count()).select_from(Reservation))
        stored = (await session.execute(select(ConversationSummary))).scalars().one()
    assert [c.spent_micros for c in counters] == [
        spent
    ] and holds == 0  # charged with the turns, no hold left
    assert stored.text == summary
    print("\none summarised request:\n" + json.dumps(last["messages"], indent=1))
    print("its summary request:\n" + json.dumps(model.summaries[-1]["messages"], indent=1))
    print("ledger rows (model, input, output, micro-USD):")
    for row in rows:
        print(" ", row)


async def test_with_summaries_off_the_oldest_turns_are_trimmed(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    model = Model()
    fake_openai.responder = model
    repliers = await run_thread(service(database, fake_openai, summary=False))
    assert model.summaries == [] and notes(repliers) == 0
    assert "ZEBRA-42" not in said(model.answers[-1])  # the first turn is gone, and nothing stands for it
    assert [m["role"] for m in model.answers[-1]["messages"][:2]] == ["system", "user"]
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(ConversationSummary)) == 0


async def test_a_budget_that_cannot_cover_the_summary_trims_instead_and_is_never_exceeded(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    # The answers of the whole thread cost well under $0.10; one summary call by the expensive model, at its
    # worst case, costs more than that.
    limit = Decimal("0.10")
    budgets = Budgets(database, PRICES, defaults_from(limits(user_daily_budget_usd=limit)))
    model = Model()
    fake_openai.responder = model
    repliers = await run_thread(service(database, fake_openai, budget=budgets))
    assert model.summaries == [] and notes(repliers) == 0  # never called: its worst case was not covered
    assert "ZEBRA-42" not in said(model.answers[-1])  # plain trimming
    rows = await ledger_rows(database)
    assert {row[0] for row in rows} == {MODEL} and sum(row[3] for row in rows) <= limit * 1_000_000


async def test_a_failing_summary_call_falls_back_to_trimming_and_the_turn_is_answered(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    model = Model(fail_summaries=True)
    fake_openai.responder = model
    repliers = await run_thread(service(database, fake_openai))
    assert model.summaries and notes(repliers) == 0  # tried, failed: every turn still answered
    assert all(not r.errors for r in repliers) and len(model.answers) == TURNS
    assert "ZEBRA-42" not in said(model.answers[-1])
    assert [m["role"] for m in model.answers[-1]["messages"][:2]] == ["system", "user"]


async def test_a_summary_call_that_never_answers_leaves_the_turn_time_to_answer(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    model = Model(hang_summaries=True)
    fake_openai.responder = model
    repliers = await run_thread(service(database, fake_openai, turn_timeout=2.0), turns=11)
    assert model.summaries and notes(repliers) == 0  # each given up within the turn's deadline
    assert all(not r.errors for r in repliers) and len(model.answers) == 11
    assert "ZEBRA-42" not in said(model.answers[-1])


async def test_a_reset_thread_loses_its_summary(database: Database, fake_openai: FakeOpenAI) -> None:
    model = Model()
    fake_openai.responder = model
    svc = service(database, fake_openai)
    await run_thread(svc)
    assert model.answers[-1]["messages"][1]["content"].startswith(SUMMARY_PREFIX)
    await svc.reset(key())
    async with database.reader() as session:  # what it told of the hidden messages is gone with them
        assert await session.scalar(select(func.count()).select_from(ConversationSummary)) == 0
    assert await svc.handle(incoming("What is the launch code?", "after"), RecordingReplier()) == (
        TurnOutcome.ANSWERED
    )
    assert [m["role"] for m in model.answers[-1]["messages"]] == ["system", "user"]
    assert "ZEBRA-42" not in said(model.answers[-1])
