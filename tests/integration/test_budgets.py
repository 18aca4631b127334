"""Budgets, ledger and guards on a real database (SQLite; PostgreSQL with TEST_DATABASE_URL), through the
real SDK against the OpenAI fake."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bots.plain import PLAIN
from core.admin.service import AdminService
from core.commands.describe import describe_usage
from core.db.models import AdminAction, BudgetCounter, Reservation, UsageRecord
from core.db.session import Database
from core.domain.errors import NotAuthorized, QuotaExceeded, RateLimited
from core.domain.ports import CallPlan, TurnGuard
from core.domain.types import ChatUser
from core.guards.bans import BanGuard
from core.guards.chain import GuardChain
from core.guards.rate_limit import RateLimitGuard, rate_limit_storage
from core.llm.client import LLMClient
from core.llm.tokens import REPLY_PRIMING, TokenCounter
from core.money.budgets import Budgets, defaults_from
from core.money.pricing import ModelPrice, PriceTable, usd
from core.settings import LimitSettings
from core.turn.history import HistoryStore
from core.turn.service import ConversationService, TurnConfig, TurnOutcome
from tests.fakes.openai_api import FakeOpenAI, Fault, Reply, ToolCallSpec
from tests.integration.test_conversations import Calculator
from tests.support import Clock, RecordingReplier, incoming, make_llm, make_service

MAX_OUTPUT = 200
MINI = PriceTable(fallback=ModelPrice(usd("10"), usd("10"), usd("40")), image_fallback=usd("0.25"))


def limits(**values: Any) -> LimitSettings:
    return LimitSettings(_env_file=None, **values)  # type: ignore[call-arg]


def worst_case_responder(counter: TokenCounter) -> Any:
    """Answers whose reported usage is exactly the reservation's worst case: spend == hold."""

    def respond(body: dict[str, Any]) -> Reply:
        prompt = sum(counter.count_message(body["model"], m, []) for m in body["messages"]) + REPLY_PRIMING
        return Reply(text="ok", prompt_tokens=prompt, completion_tokens=body["max_completion_tokens"])

    return respond


def build(
    database: Database,
    llm: LLMClient,
    budgets: Budgets,
    *,
    guards: list[TurnGuard] | None = None,
    model: str = "gpt-4o-mini",
    fallback: str | None = None,
    tools: Any = None,
) -> ConversationService:
    counter = TokenCounter()
    config = TurnConfig(
        default_model=model,
        system_prompt="sys",
        max_output_tokens=MAX_OUTPUT,
        fallback_model=fallback,
        max_tool_rounds=2,
    )
    return ConversationService(
        database=database,
        llm=llm,
        counter=counter,
        config=config,
        history=HistoryStore(database, counter),
        budget=budgets,
        guards=GuardChain(guards or []),
        tools=tools,
    )


def worst_micros(prompt_tokens: int) -> int:
    return MINI.worst_case("gpt-4o-mini", prompt_tokens=prompt_tokens, max_output_tokens=MAX_OUTPUT).micros


def first_turn_prompt(counter: TokenCounter, text: str) -> int:
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]
    return sum(counter.count_message("gpt-4o-mini", m, []) for m in messages) + REPLY_PRIMING


async def test_fifty_concurrent_turns_never_overspend(database: Database, fake_openai: FakeOpenAI) -> None:
    counter = TokenCounter()
    per_turn = worst_micros(first_turn_prompt(counter, "question"))
    budget = Decimal(per_turn * 5 + per_turn // 2) / 1_000_000  # five fit, the sixth does not
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=budget)))
    llm = make_llm(fake_openai.base_url)
    service = build(database, llm, budgets)
    fake_openai.responder = worst_case_responder(counter)
    repliers = [RecordingReplier() for _ in range(50)]
    outcomes = await asyncio.gather(
        *(service.handle(incoming("question", f"e{i}", thread=f"T{i}"), repliers[i]) for i in range(50))
    )
    assert outcomes.count(TurnOutcome.ANSWERED) == 5
    refusals = [r.errors[0] for r in repliers if r.errors]
    assert len(refusals) == 45 and all(isinstance(e, QuotaExceeded) for e in refusals)
    assert "Your daily budget of" in refusals[0].user_message and "resets at" in refusals[0].user_message
    async with database.reader() as session:
        spent = await session.scalar(select(func.sum(UsageRecord.cost_micros)))
        counters = (await session.execute(select(BudgetCounter))).scalars().all()
        holds = await session.scalar(select(func.count()).select_from(Reservation))
    assert spent == 5 * per_turn <= int(budget * 1_000_000)
    assert [(c.spent_micros, c.reserved_micros) for c in counters] == [(5 * per_turn, 0)]
    assert holds == 0
    assert len(fake_openai.chat_requests()) == 5
    await llm.close()


async def test_refusal_says_which_limit_what_is_left_and_when_it_resets(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    clock = Clock(datetime(2026, 3, 14, 21, 30, tzinfo=UTC))
    counter = TokenCounter()
    per_turn = worst_micros(first_turn_prompt(counter, "hi"))
    budgets = Budgets(
        database,
        MINI,
        defaults_from(limits(channel_daily_budget_usd=Decimal(per_turn) / 10**6 * 1)),
        clock=clock,
    )
    llm = make_llm(fake_openai.base_url)
    service = build(database, llm, budgets)
    fake_openai.responder = worst_case_responder(counter)
    assert await service.handle(incoming("hi", "e1", thread="A"), RecordingReplier()) is TurnOutcome.ANSWERED
    replier = RecordingReplier()
    assert await service.handle(incoming("hi", "e2", thread="B", user_id="U2"), replier) is TurnOutcome.FAILED
    message = replier.errors[0].user_message
    assert message.startswith("This channel's daily budget of $")
    assert "$0.00 is left" in message
    assert "It resets at 2026-03-15 00:00 UTC (in 2 h 30 min)." in message
    await llm.close()


async def test_day_and_month_roll_over(database: Database, fake_openai: FakeOpenAI) -> None:
    clock = Clock(datetime(2026, 1, 31, 23, 50, tzinfo=UTC))
    counter = TokenCounter()
    per_turn = worst_micros(first_turn_prompt(counter, "hi"))
    settings = limits(
        user_daily_budget_usd=Decimal(per_turn) / 10**6, user_monthly_budget_usd=Decimal(2 * per_turn) / 10**6
    )
    budgets = Budgets(database, MINI, defaults_from(settings), clock=clock)
    llm = make_llm(fake_openai.base_url)
    service = build(database, llm, budgets)
    fake_openai.responder = worst_case_responder(counter)

    async def turn(event: str) -> TurnOutcome:
        return await service.handle(incoming("hi", event, thread=event), RecordingReplier())

    assert await turn("jan31-a") is TurnOutcome.ANSWERED
    assert await turn("jan31-b") is TurnOutcome.FAILED  # daily limit
    clock.advance(minutes=15)  # 2026-02-01 00:05: a new day and a new month
    assert await turn("feb1-a") is TurnOutcome.ANSWERED
    clock.advance(days=1)
    assert await turn("feb2-a") is TurnOutcome.ANSWERED
    clock.advance(days=1)
    replier = RecordingReplier()
    assert await service.handle(incoming("hi", "feb3", thread="feb3"), replier) is TurnOutcome.FAILED
    assert "Your monthly budget" in replier.errors[0].user_message
    assert "2026-03-01 00:00 UTC" in replier.errors[0].user_message
    await llm.close()


async def test_a_crashed_reservation_expires(database: Database) -> None:
    clock = Clock(datetime(2026, 5, 1, 12, 0, tzinfo=UTC))
    plan = CallPlan(incoming("x", "e1"), "gpt-4o-mini", 100, MAX_OUTPUT, 1)
    budgets = Budgets(
        database,
        MINI,
        defaults_from(limits(user_daily_budget_usd=Decimal(worst_micros(100)) / 10**6)),
        clock=clock,
        reservation_ttl=timedelta(minutes=10),
    )
    await budgets.reserve(plan)  # the process "crashes": never settled nor released
    with pytest.raises(QuotaExceeded) as refused:
        await budgets.reserve(plan)
    assert "held by answers in progress" in refused.value.user_message
    clock.advance(minutes=11)
    hold = await budgets.reserve(plan)  # the expired hold was given back first
    assert hold.reservation_id is not None
    async with database.reader() as session:
        counter = (await session.execute(select(BudgetCounter))).scalar_one()
        assert counter.reserved_micros == worst_micros(100)
        assert await session.scalar(select(func.count()).select_from(Reservation)) == 1


async def test_failed_call_releases_its_hold_and_writes_no_ledger(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("1"))))
    llm = make_llm(fake_openai.base_url)
    fake_openai.script(Fault(500))
    replier = RecordingReplier()
    assert await build(database, llm, budgets).handle(incoming("hi", "e1"), replier) is TurnOutcome.FAILED
    async with database.reader() as session:
        counter = (await session.execute(select(BudgetCounter))).scalar_one()
        assert (counter.spent_micros, counter.reserved_micros) == (0, 0)
        assert await session.scalar(select(func.count()).select_from(UsageRecord)) == 0
    await llm.close()


async def test_every_tool_round_is_a_priced_ledger_row(database: Database, fake_openai: FakeOpenAI) -> None:
    budgets = Budgets(database, MINI, {})
    llm = make_llm(fake_openai.base_url)
    fake_openai.script(
        Reply(
            tool_calls=[ToolCallSpec("add", '{"a": 1, "b": 2}')],
            prompt_tokens=1000,
            cached_tokens=200,
            completion_tokens=20,
        ),
        Reply(text="3", prompt_tokens=1100, completion_tokens=5),
    )
    await build(database, llm, budgets, tools=Calculator()).handle(incoming("1+2?", "e1"), RecordingReplier())
    async with database.reader() as session:
        rows = (await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars().all()
    assert [(r.input_tokens, r.cached_tokens, r.output_tokens, r.cost_micros) for r in rows] == [
        (1000, 200, 20, 147),  # 800 x 0.15 + 200 x 0.075 + 20 x 0.6 = 120 + 15 + 12
        (1100, 0, 5, 168),  # 1100 x 0.15 + 5 x 0.6 = 165 + 3
    ]
    assert {(r.platform, r.workspace_id, r.channel_id, r.user_id, r.model, r.kind) for r in rows} == {
        ("console", "W1", "C1", "U1", "gpt-4o-mini", "chat")
    }
    assert rows[0].conversation_id is not None
    await llm.close()


async def test_fallback_model_answers_when_the_budget_cannot_cover_the_main_one(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    counter = TokenCounter()
    prompt = first_turn_prompt(counter, "hi")
    big = MINI.worst_case("gpt-4o", prompt_tokens=prompt, max_output_tokens=MAX_OUTPUT).micros
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal(big - 1) / 10**6)))
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    service = build(database, llm, budgets, model="gpt-4o", fallback="gpt-4o-mini")
    assert await service.handle(incoming("hi", "e1"), replier) is TurnOutcome.ANSWERED
    assert fake_openai.chat_requests()[0]["model"] == "gpt-4o-mini"
    assert replier.finished == [
        "echo: hi\n\n_Answered with gpt-4o-mini: the budget does not cover gpt-4o right now._"
    ]
    await llm.close()


async def test_admin_overrides_and_refusals_are_recorded(database: Database, fake_openai: FakeOpenAI) -> None:
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("5"))))
    admin = AdminService(database, budgets, admins=["slack:UADMIN"])
    boss = ChatUser("slack", "UADMIN", "boss")
    visitor = ChatUser("slack", "U2", "visitor")
    await admin.quota_set(
        boss, scope="user", subject="console:U1", period="day", usd_limit=Decimal("0"), token_limit=None
    )
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    await build(database, llm, budgets).handle(incoming("hi", "e1"), replier)
    assert isinstance(replier.errors[0], QuotaExceeded) and "$0.00" in replier.errors[0].user_message
    with pytest.raises(NotAuthorized):
        await admin.quota_set(
            visitor,
            scope="user",
            subject="console:U1",
            period="day",
            usd_limit=Decimal("9"),
            token_limit=None,
        )
    with pytest.raises(NotAuthorized):
        await admin.report(visitor, period="today", by="user")
    assert await admin.quota_clear(boss, scope="user", subject="console:U1", period="day")
    assert (
        await build(database, llm, budgets).handle(incoming("hi", "e2"), RecordingReplier())
        is TurnOutcome.ANSWERED
    )
    async with database.reader() as session:
        actions = [
            (a.actor_id, a.action, a.allowed)
            for a in (await session.execute(select(AdminAction).order_by(AdminAction.id))).scalars()
        ]
    assert actions == [
        ("UADMIN", "quota.set", True),
        ("U2", "quota.set", False),
        ("U2", "report", False),
        ("UADMIN", "quota.clear", True),
    ]
    # Platform-reported admins (Slack workspace admin, Discord Manage Server) are admins too.
    assert len(await admin.quota_show(ChatUser("discord", "42", "mod", is_admin=True))) >= 1
    await llm.close()


async def test_banned_users_are_refused_until_the_ban_expires(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    clock = Clock(datetime.now(UTC))
    budgets = Budgets(database, MINI, {})
    admin = AdminService(database, budgets, admins=["cli:root"], clock=clock)
    root = ChatUser("cli", "root", "root")
    await admin.ban(root, "console:U1", reason="spam", until=clock.now + timedelta(hours=1))
    llm = make_llm(fake_openai.base_url)
    service = build(database, llm, budgets, guards=[BanGuard(database, clock=clock)])
    replier = RecordingReplier()
    assert await service.handle(incoming("hi", "e1"), replier) is TurnOutcome.FAILED
    assert isinstance(replier.errors[0], NotAuthorized) and "Reason: spam" in replier.errors[0].user_message
    assert fake_openai.chat_requests() == []
    assert (
        await service.handle(incoming("hi", "e2", user_id="U2"), RecordingReplier()) is TurnOutcome.ANSWERED
    )
    clock.advance(hours=2)
    assert await service.handle(incoming("hi", "e3"), RecordingReplier()) is TurnOutcome.ANSWERED
    await llm.close()


async def test_a_ban_placed_on_one_replica_refuses_the_next_turn_on_another(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    budgets = Budgets(database, MINI, {})
    admin = AdminService(database, budgets, admins=["cli:root"])  # replica A's admin
    root = ChatUser("cli", "root", "root")
    llm = make_llm(fake_openai.base_url)
    replica_b = make_service(database, llm, budget=budgets, guards=[BanGuard(database)], owner="replica-b")
    assert await replica_b.handle(incoming("hi", "e1"), RecordingReplier()) is TurnOutcome.ANSWERED
    await admin.ban(root, "console:U1", reason="spam", until=None)
    replier = RecordingReplier()
    assert await replica_b.handle(incoming("again", "e2"), replier) is TurnOutcome.FAILED
    assert isinstance(replier.errors[0], NotAuthorized) and "Reason: spam" in replier.errors[0].user_message
    assert len(fake_openai.chat_requests()) == 1
    await admin.unban(root, "console:U1")
    assert await replica_b.handle(incoming("back", "e3"), RecordingReplier()) is TurnOutcome.ANSWERED
    await llm.close()


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_rate_limit_refuses_with_a_retry_time(
    database: Database, fake_openai: FakeOpenAI, backend: str
) -> None:
    redis_url = os.environ.get("TEST_REDIS_URL") if backend == "redis" else None
    if backend == "redis" and not redis_url:
        pytest.skip("TEST_REDIS_URL is not set")
    storage = rate_limit_storage(redis_url)
    if redis_url:
        await storage.reset()
    guard = RateLimitGuard(storage, per_user="2/minute")
    llm = make_llm(fake_openai.base_url)
    service = build(database, llm, Budgets(database, MINI, {}), guards=[guard])
    outcomes = [await service.handle(incoming("hi", f"e{i}"), r := RecordingReplier()) for i in range(2)]
    replier = RecordingReplier()
    outcomes.append(await service.handle(incoming("hi", "e3"), replier))
    assert outcomes == [TurnOutcome.ANSWERED, TurnOutcome.ANSWERED, TurnOutcome.FAILED]
    error = replier.errors[0]
    assert isinstance(error, RateLimited) and "Try again in" in error.user_message
    assert error.retry_after is not None and 0 < error.retry_after <= 60
    # Another user has their own window.
    assert await service.handle(incoming("hi", "e4", user_id="U9"), r) is TurnOutcome.ANSWERED
    await llm.close()


async def test_usage_of_the_caller(database: Database, fake_openai: FakeOpenAI) -> None:
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("1"))))
    llm = make_llm(fake_openai.base_url)
    fake_openai.script(Reply(text="a", prompt_tokens=1000, completion_tokens=100))
    await build(database, llm, budgets).handle(incoming("hi", "e1"), RecordingReplier())
    usage = await budgets.usage_of(ChatUser("console", "U1", "u"), incoming("x", "y").key)
    day, month = usage
    assert (day.period, day.spent_micros, day.tokens) == ("day", 210, 1100)  # 1000 x 0.15 + 100 x 0.6
    assert day.limit is not None and day.limit.micros == 1_000_000
    assert (month.period, month.spent_micros, month.limit) == ("month", 210, None)
    text = PLAIN.blocks(describe_usage(usage, datetime.now(UTC)))
    assert text.splitlines()[0].startswith(
        "Today: $0.00021 (1,100 tokens) of $1.00, $0.99979 left (resets in "
    )
    assert text.splitlines()[1] == "This month: $0.00021 (1,100 tokens)"
    await llm.close()


async def test_a_call_that_was_made_is_charged_even_when_the_turn_fails_after_it(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    from core.guards.audit import ModerationAudit
    from core.guards.moderation import ModerationPolicy, Moderator
    from core.guards.output_moderation import OutputModeration

    fake_openai.moderation_flags = {"bad words": {"hate": 0.99}}
    fake_openai.script(Reply(text="some bad words", prompt_tokens=1000, completion_tokens=100))
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("1"))))
    llm = make_llm(fake_openai.base_url)
    counter = TokenCounter()
    moderator = Moderator(llm.sdk, ModerationPolicy())
    service = ConversationService(
        database=database,
        llm=llm,
        counter=counter,
        config=TurnConfig(default_model="gpt-4o-mini", system_prompt="sys", max_output_tokens=MAX_OUTPUT),
        budget=budgets,
        output_moderation=OutputModeration(moderator, ModerationAudit(database)),
    )
    assert await service.handle(incoming("hi", "e1"), RecordingReplier()) is TurnOutcome.FAILED
    async with database.reader() as session:
        costs = (await session.execute(select(UsageRecord.cost_micros))).scalars().all()
        counter_row = (await session.execute(select(BudgetCounter))).scalar_one()
    assert costs == [210]  # 1000 x 0.15 + 100 x 0.6: the provider billed it, so the ledger has it
    assert (counter_row.spent_micros, counter_row.reserved_micros) == (210, 0)
    await llm.close()
