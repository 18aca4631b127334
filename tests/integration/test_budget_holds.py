"""Budgets held per model call (issue 12, item 6) on a real database (SQLite; PostgreSQL with
TEST_DATABASE_URL, there with two service instances on one database), through the real SDK against the
OpenAI fake: a turn holds its first call (and one answer after a tool round), extends the hold before each
further round, and answers in words when the budget cannot cover more."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db.models import BudgetCounter, Reservation, UsageRecord
from core.db.session import Database
from core.domain.errors import QuotaExceeded
from core.domain.ports import CallPlan
from core.llm.client import LLMClient
from core.llm.tokens import REPLY_PRIMING, TokenCounter
from core.money.budgets import Budgets, defaults_from
from core.turn.context import FRAMING_SLACK
from core.turn.reservation import NO_TOOLS_NOTE
from core.turn.service import ConversationService, TurnConfig, TurnOutcome
from tests.fakes.openai_api import FakeOpenAI, Reply, ToolCallSpec
from tests.integration.test_budgets import MINI, limits
from tests.integration.test_conversations import Calculator
from tests.support import RecordingReplier, incoming, make_llm

MODEL = "gpt-4o-mini"
SYSTEM = "sys"
MAX_OUTPUT = 1024  # the defaults of THREADWISE_MAX_OUTPUT_TOKENS, …_MAX_TOOL_ROUNDS, …_TOOL_ROUND_TOKENS
TOOL_ROUNDS = 4
ROUND_TOKENS = 4000
QUESTION = "budget " * 8000  # about 8k tokens


def service(database: Database, llm: LLMClient, budgets: Budgets) -> ConversationService:
    counter = TokenCounter()
    config = TurnConfig(
        default_model=MODEL,
        system_prompt=SYSTEM,
        max_output_tokens=MAX_OUTPUT,
        max_tool_rounds=TOOL_ROUNDS,
        tool_round_tokens=ROUND_TOKENS,
    )
    return ConversationService(
        database=database, llm=llm, counter=counter, config=config, budget=budgets, tools=Calculator()
    )


def first_prompt(counter: TokenCounter, text: str, *, tools: bool = True) -> int:
    """Exact prompt tokens of a thread's first call (what the context builder counts)."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    prompt = sum(counter.count_message(MODEL, m, []) for m in messages) + REPLY_PRIMING
    if tools:
        definitions = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
        prompt += sum(counter.count_text(MODEL, json.dumps(tool)) for tool in definitions)
    return prompt


def worst(prompt: int) -> int:
    return MINI.worst_case(MODEL, prompt_tokens=prompt, max_output_tokens=MAX_OUTPUT).micros


def daily(micros: int) -> Decimal:
    return Decimal(micros) / 1_000_000


def worst_case_usage(counter: TokenCounter, *, use_tools: bool) -> Any:
    """A model that bills every call at its worst case (the exact prompt, the longest answer) and, with
    ``use_tools``, calls a tool whenever it may."""

    def respond(body: dict[str, Any]) -> Reply:
        prompt = sum(counter.count_message(MODEL, m, []) for m in body["messages"]) + REPLY_PRIMING
        prompt += sum(counter.count_text(MODEL, json.dumps(tool)) for tool in body.get("tools", []))
        usage = {"prompt_tokens": prompt, "completion_tokens": body["max_completion_tokens"]}
        if use_tools and body.get("tools") and body.get("tool_choice") != "none":
            return Reply(tool_calls=[ToolCallSpec("add", '{"a": 1, "b": 2}')], **usage)
        return Reply(text="ok", **usage)

    return respond


@pytest.fixture
async def instances(database: Database, database_url: str) -> AsyncIterator[list[Database]]:
    """The database as seen by two service instances on PostgreSQL (two engines, like two replicas); one on
    SQLite, which is single-process."""
    if database.is_sqlite:
        yield [database]
        return
    other = Database.from_url(database_url)
    yield [database, other]
    await other.close()


async def ledger(database: Database) -> tuple[int, list[tuple[int, int]], int]:
    async with database.reader() as session:
        spent = await session.scalar(select(func.coalesce(func.sum(UsageRecord.cost_micros), 0)))
        counters = (await session.execute(select(BudgetCounter))).scalars().all()
        holds = await session.scalar(select(func.count()).select_from(Reservation))
    return int(spent or 0), [(c.spent_micros, c.reserved_micros) for c in counters], int(holds or 0)


async def test_thirty_concurrent_8k_questions_against_a_budget_for_five_get_one_to_five_answers(
    database: Database, instances: list[Database], fake_openai: FakeOpenAI
) -> None:
    counter = TokenCounter()
    per_turn = worst(first_prompt(counter, QUESTION))  # what one answered turn costs here
    budget = daily(per_turn * 5 + per_turn // 2)
    llm = make_llm(fake_openai.base_url)
    services = [
        service(db, llm, Budgets(db, MINI, defaults_from(limits(user_daily_budget_usd=budget))))
        for db in instances
    ]
    fake_openai.responder = worst_case_usage(counter, use_tools=False)
    repliers = [RecordingReplier() for _ in range(30)]

    outcomes = await asyncio.gather(
        *(
            services[i % len(services)].handle(incoming(QUESTION, f"e{i}", thread=f"T{i}"), repliers[i])
            for i in range(30)
        )
    )

    answered = outcomes.count(TurnOutcome.ANSWERED)
    assert 1 <= answered <= 5  # all 30 were refused when every turn held five rounds up front
    refusals = [r.errors[0] for r in repliers if r.errors]
    assert len(refusals) == 30 - answered and all(isinstance(e, QuotaExceeded) for e in refusals)
    spent, counters, holds = await ledger(database)
    assert spent <= answered * per_turn  # an answer costs its first call (less when it offered no tools)
    assert spent <= int(budget * 1_000_000)
    assert counters == [(spent, 0)] and holds == 0
    await llm.close()


async def test_concurrent_tool_turns_extend_their_holds_and_never_overspend(
    database: Database, instances: list[Database], fake_openai: FakeOpenAI
) -> None:
    counter = TokenCounter()
    per_turn = worst(first_prompt(counter, "add 1 and 2"))
    budget = daily(per_turn * 12)  # room for a few tool rounds, not for every round of every turn
    llm = make_llm(fake_openai.base_url)
    services = [
        service(db, llm, Budgets(db, MINI, defaults_from(limits(user_daily_budget_usd=budget))))
        for db in instances
    ]
    fake_openai.responder = worst_case_usage(counter, use_tools=True)  # calls a tool whenever it may
    repliers = [RecordingReplier() for _ in range(10)]

    outcomes = await asyncio.gather(
        *(
            services[i % len(services)].handle(incoming("add 1 and 2", f"e{i}", thread=f"T{i}"), repliers[i])
            for i in range(10)
        )
    )

    assert TurnOutcome.ANSWERED in outcomes
    for outcome, replier in zip(outcomes, repliers, strict=True):
        if outcome is TurnOutcome.FAILED:
            assert [type(e) for e in replier.errors] == [QuotaExceeded]
        else:
            assert replier.finished in (["ok"], [f"ok\n\n_{NO_TOOLS_NOTE}_"])
    # Tool rounds were made (the first turn to hold had room for one), each after extending its hold.
    assert len(fake_openai.chat_requests()) > outcomes.count(TurnOutcome.ANSWERED)
    spent, counters, holds = await ledger(database)
    assert spent <= int(budget * 1_000_000)
    assert counters == [(spent, 0)] and holds == 0
    await llm.close()


async def test_a_budget_for_one_call_but_not_a_tool_round_gets_an_answer_in_words(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    counter = TokenCounter()
    first = worst(first_prompt(counter, "what is 1 + 2?", tools=False))
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=daily(first * 3 // 2))))
    llm = make_llm(fake_openai.base_url)
    fake_openai.responder = worst_case_usage(counter, use_tools=True)
    replier = RecordingReplier()

    outcome = await service(database, llm, budgets).handle(incoming("what is 1 + 2?", "e1"), replier)

    assert outcome is TurnOutcome.ANSWERED  # refused before: the hold was five rounds' worst case
    [request] = fake_openai.chat_requests()
    assert "tools" not in request and "tool_choice" not in request
    assert replier.finished == [f"ok\n\n_{NO_TOOLS_NOTE}_"]
    spent, counters, holds = await ledger(database)
    assert spent == first and counters == [(first, 0)] and holds == 0
    await llm.close()


async def test_a_refused_extension_makes_the_model_answer_now_within_the_hold(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    counter = TokenCounter()
    prompt = first_prompt(counter, "add 1 and 2")
    growth = MAX_OUTPUT + ROUND_TOKENS + FRAMING_SLACK
    held = worst(prompt) + worst(prompt + growth)  # the first call and one answer after a tool round
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=daily(held + 10))))
    llm = make_llm(fake_openai.base_url)
    fake_openai.responder = worst_case_usage(counter, use_tools=True)
    replier = RecordingReplier()

    outcome = await service(database, llm, budgets).handle(incoming("add 1 and 2", "e1"), replier)

    assert outcome is TurnOutcome.ANSWERED and replier.finished == ["ok"]
    first, second = fake_openai.chat_requests()
    assert "tool_choice" not in first and second["tool_choice"] == "none"  # up to 3 more rounds were allowed
    spent, counters, holds = await ledger(database)
    assert spent <= held and counters == [(spent, 0)] and holds == 0
    await llm.close()


async def test_an_extension_is_all_or_nothing_and_released_with_the_hold(database: Database) -> None:
    counter = TokenCounter()
    prompt = first_prompt(counter, "hi")
    plan = CallPlan(incoming("hi", "e1"), MODEL, prompt, MAX_OUTPUT, 1, MAX_OUTPUT + ROUND_TOKENS)
    two = MINI.worst_case(MODEL, prompt_tokens=prompt, max_output_tokens=MAX_OUTPUT).micros
    two += MINI.worst_case(
        MODEL, prompt_tokens=prompt + MAX_OUTPUT + ROUND_TOKENS, max_output_tokens=MAX_OUTPUT
    ).micros
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=daily(two))))

    async def held() -> tuple[list[tuple[int, int]], list[int]]:
        async with database.reader() as session:
            counters = (await session.execute(select(BudgetCounter))).scalars().all()
            amounts = (await session.execute(select(Reservation.amount_micros))).scalars().all()
        return [(c.spent_micros, c.reserved_micros) for c in counters], list(amounts)

    hold = await budgets.reserve(plan)
    assert await held() == ([(0, worst(prompt))], [worst(prompt)])
    with pytest.raises(QuotaExceeded):
        await budgets.extend(hold, [], replace(plan, rounds=3))
    assert await held() == ([(0, worst(prompt))], [worst(prompt)])  # refused: nothing changed
    assert await budgets.extend(hold, [], plan) == hold  # covered already
    grown = await budgets.extend(hold, [], replace(plan, rounds=2))
    assert grown.micros == two and await held() == ([(0, two)], [two])
    await budgets.release(grown)
    assert await held() == ([(0, 0)], [])
