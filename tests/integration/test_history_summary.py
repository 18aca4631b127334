"""Long threads that remember (issue 16, item 3), on a real database through the real SDK against the OpenAI
fake: a thread that outgrows its window keeps a fact from its first turn through a summary written by a
separate model call, the summary is updated incrementally, priced in the ledger and held against the budget
(a budget that cannot cover it means plain trimming, never an overspent turn), the thread is told once, and
with THREADWISE_HISTORY_SUMMARY=false the oldest turns are simply trimmed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    summary_model: str | None = SUMMARY_MODEL,
) -> ConversationService:
    config = TurnConfig(
        default_model=MODEL,
        system_prompt="You are a test assistant.",
        max_output_tokens=100,
        context_windows={MODEL: 420},  # room for about four turns of history next to the summary
        history_summary=summary,
        summary_model=summary_model,
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


class Composed:
    """The fake model of a composed-service thread: "ok" to every turn; as the summariser (told apart by its
    system prompt) it keeps the launch code when it reads it; the last question is answered from whatever its
    request holds, so the answer shows whether the first turn's fact reached the model."""

    def __init__(self) -> None:
        self.summaries: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> Script:
        if body["messages"][0]["content"] == SUMMARY_SYSTEM:
            self.summaries.append(body)
            keeps = "the launch code is ZEBRA-42" if "ZEBRA-42" in said(body) else "nothing to keep"
            return Reply(text=f"Summary {len(self.summaries)}: {keeps}.")
        self.answers.append(body)
        last = body["messages"][-1]["content"]
        if isinstance(last, str) and last.startswith("What was the launch code"):
            known = "ZEBRA-42" in said(body)
            return Reply(text="It is ZEBRA-42, as you said at the start." if known else "I don't know.")
        return Reply(text=f"ok, noted item {len(self.answers)}.")


async def composed_thread(
    database_url: str,
    fake: FakeOpenAI,
    monkeypatch: Any,
    turns: int,
    *,
    summary: bool,
) -> tuple[Composed, list[RecordingReplier], list[UsageRecord], int, int]:
    """``turns`` turns of one thread on the service `threadwise serve` composes: a first turn with a fact,
    routine turns, and a last question about the first turn; a daily budget of $0.10 per user and the history
    capped at 1,000 tokens. Returns the model, the repliers, the ledger, what the budget counted and the holds
    left."""
    from bots.bootstrap import open_core
    from core.domain.types import ChatUser, ConversationKey, IncomingMessage
    from core.settings import load_settings

    model = Composed()
    fake.responder = model
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.base_url,
        "DATABASE_URL": database_url,
        "THREADWISE_USER_DAILY_BUDGET_USD": "0.10",
        "THREADWISE_HISTORY_MAX_TOKENS": "1000",
        "THREADWISE_HISTORY_SUMMARY": "true" if summary else "false",
        "THREADWISE_SUMMARY_MAX_TOKENS": "128",
        "THREADWISE_SUMMARY_MODEL": "gpt-4.1-mini",
        "THREADWISE_USER_RATE_LIMIT": "off",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    where = ConversationKey("slack", "T1", "C1", "1700000000.000100")
    user = ChatUser("slack", "U0ADA", "ada")
    repliers: list[RecordingReplier] = []
    async with open_core(load_settings(env_file=None)) as core:
        for index in range(turns):
            if index == 0:
                text = f"Please remember: {FIRST}"
            elif index == turns - 1:
                text = "What was the launch code I gave you at the very start?"
            else:
                text = f"Turn {index}: note item {index}, a routine status update, nothing special."
            replier = RecordingReplier()
            arriving = IncomingMessage(where, user, text, f"e{index}", datetime.now(UTC))
            await core.turns.handle(arriving, replier)
            assert not replier.errors, (index, replier.errors)
            repliers.append(replier)
        async with core.database.reader() as session:
            rows = list((await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars())
            counted = await session.scalar(select(func.max(BudgetCounter.spent_micros))) or 0
            holds = await session.scalar(select(func.count()).select_from(Reservation)) or 0
    return model, repliers, rows, counted, holds


async def test_a_300_turn_thread_answers_about_its_first_turn_from_the_summary_within_its_budget(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: Any
) -> None:
    model, repliers, rows, counted, holds = await composed_thread(
        database_url, fake_openai, monkeypatch, 300, summary=True
    )
    assert repliers[-1].finished == ["It is ZEBRA-42, as you said at the start."]
    last = model.answers[-1]
    assert "Please remember" not in said(last)  # the first turn itself is long out of the window
    assert last["messages"][1]["role"] == "system"
    assert last["messages"][1]["content"].startswith(SUMMARY_PREFIX)  # it came through the summary
    assert "ZEBRA-42" in last["messages"][1]["content"]
    assert all(s["model"] == "gpt-4.1-mini" for s in model.summaries) and len(model.summaries) >= 10
    assert notes(repliers) == 1  # the thread is told once

    # Every call is in the ledger, the summaries too; the budget counted exactly that, and nothing is held.
    assert len(rows) == len(model.summaries) + len(model.answers) == len(model.summaries) + 300
    assert sum(r.model == "gpt-4.1-mini" for r in rows) == len(model.summaries)
    assert all(r.cost_micros > 0 for r in rows)
    spent = sum(r.cost_micros for r in rows)
    assert counted == spent <= 100_000 and holds == 0


async def test_with_summaries_off_the_same_thread_forgets_its_first_turn(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: Any
) -> None:
    model, repliers, rows, _, _ = await composed_thread(
        database_url, fake_openai, monkeypatch, 60, summary=False
    )
    assert model.summaries == [] and notes(repliers) == 0
    assert repliers[-1].finished == ["I don't know."]  # plain trimming: nothing stands for the first turn
    assert [m["role"] for m in model.answers[-1]["messages"][:2]] == ["system", "user"]
    assert {r.model for r in rows} == {"gpt-4o-mini"}


async def test_without_a_summary_model_the_conversations_own_model_summarises(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    model = Model()
    fake_openai.responder = model
    await run_thread(service(database, fake_openai, summary_model=None))
    assert model.summaries and {s["model"] for s in model.summaries} == {MODEL}
    assert model.answers[-1]["messages"][1]["content"].startswith(SUMMARY_PREFIX)
