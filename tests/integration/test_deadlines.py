"""Deadlines of a turn (issue 12, item 3) through the real openai SDK against a hung wire fake, on SQLite and
PostgreSQL: the first token, a stream that stalls, retries inside the deadlines, the whole turn, and a turn
cancelled at shutdown. Timeouts are small so the tests run fast; the only bound asserted about time is that a
turn ends (``ENDS_WITHIN``, far above any deadline used here)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.db.models import BudgetCounter, Message, ProcessedEvent, Reservation, UsageRecord
from core.db.session import Database
from core.domain.errors import INTERRUPTED_MESSAGE, LLMUnavailable, TurnInterrupted, TurnTimedOut
from core.domain.ports import ToolResult
from core.domain.types import IncomingMessage
from core.money.budgets import Budgets, defaults_from
from core.turn.service import TurnOutcome
from tests.fakes.openai_api import FakeOpenAI, Fault, Reply, Silent, Stall, ToolCallSpec
from tests.integration.test_budgets import MINI, limits
from tests.integration.test_conversations import Calculator
from tests.support import RecordingReplier, incoming, make_llm, make_service

ENDS_WITHIN = 60.0


async def rows(database: Database) -> list[tuple[str, str]]:
    async with database.reader() as session:
        found = await session.execute(select(Message.role, Message.status).order_by(Message.id))
        return [(role, status) for role, status in found.all()]


async def holds_and_spend(database: Database) -> tuple[list[tuple[int, int]], int]:
    async with database.reader() as session:
        counters = (await session.execute(select(BudgetCounter))).scalars().all()
        left = len((await session.execute(select(Reservation))).scalars().all())
    return [(c.spent_micros, c.reserved_micros) for c in counters], left


async def test_a_silent_provider_is_answered_with_a_clear_message_and_no_retry_after_the_deadline(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url, timeout=60, max_retries=2, first_token_timeout=0.5)
    service = make_service(database, llm)
    fake_openai.script(Silent(), Reply(text="later answer"))
    replier = RecordingReplier()

    outcome = await asyncio.wait_for(service.handle(incoming("hello?", "e1"), replier), ENDS_WITHIN)

    assert outcome is TurnOutcome.FAILED and replier.finished == []
    [error] = replier.errors
    assert isinstance(error, LLMUnavailable)
    assert error.user_message == "The model did not answer within 0.5 s. Please try again."
    assert len(fake_openai.chat_requests()) == 1  # the hung attempt was not retried past the deadline
    assert await rows(database) == [("user", "failed"), ("assistant", "failed")]  # hidden from later turns
    assert await service.handle(incoming("again", "e2"), RecordingReplier()) is TurnOutcome.ANSWERED
    assert [m["content"] for m in fake_openai.chat_requests()[-1]["messages"][1:]] == ["again"]
    await llm.close()


async def test_a_stream_that_stalls_after_one_delta_keeps_the_text_and_says_the_model_stopped(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("1"))))
    llm = make_llm(fake_openai.base_url, timeout=60, max_retries=2, first_token_timeout=0.5)
    service = make_service(database, llm, budget=budgets)
    fake_openai.script(Stall("The answer is"))
    replier = RecordingReplier()

    outcome = await asyncio.wait_for(service.handle(incoming("tell me", "e1"), replier), ENDS_WITHIN)

    assert outcome is TurnOutcome.FAILED
    assert [value for kind, value in replier.events if kind == "update"] == ["The answer is"]
    [error] = replier.errors
    assert error.user_message == "The model stopped answering (nothing came for 0.5 s). Please try again."
    assert await holds_and_spend(database) == ([(0, 0)], 0)  # the call never completed: the hold went back
    assert len(fake_openai.chat_requests()) == 1
    await llm.close()


async def test_a_retry_that_could_not_end_before_the_first_token_deadline_is_not_started(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url, timeout=60, max_retries=2, first_token_timeout=1)
    service = make_service(database, llm)
    fake_openai.script(Fault(503, retry_after=30), Reply(text="too late"))
    replier = RecordingReplier()

    outcome = await asyncio.wait_for(service.handle(incoming("hi", "e1"), replier), ENDS_WITHIN)

    assert outcome is TurnOutcome.FAILED
    assert "having problems" in replier.errors[0].user_message
    assert len(fake_openai.chat_requests()) == 1
    await llm.close()


async def test_retries_within_the_first_token_deadline_still_answer(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url, timeout=60, max_retries=2, first_token_timeout=20)
    service = make_service(database, llm)
    fake_openai.script(Fault(500), Fault(429, code="rate_limit_exceeded", retry_after=0.01), Reply(text="ok"))
    replier = RecordingReplier()

    assert await service.handle(incoming("hi", "e1"), replier) is TurnOutcome.ANSWERED

    assert replier.finished == ["ok"] and len(fake_openai.chat_requests()) == 3
    await llm.close()


class SlowCalculator(Calculator):
    """Adds, after ``seconds``: a tool round that outlasts the turn."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def run(
        self, calls: Any, message: IncomingMessage, conversation_id: int | None = None, **_: Any
    ) -> list[ToolResult]:
        await asyncio.sleep(self.seconds)
        return await super().run(calls, message, conversation_id)


async def test_the_turn_timeout_covers_tool_rounds_and_charges_the_calls_that_completed(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("1"))))
    llm = make_llm(fake_openai.base_url, first_token_timeout=20)
    service = make_service(database, llm, budget=budgets, tools=SlowCalculator(30), turn_timeout=1)
    fake_openai.script(
        Reply(tool_calls=[ToolCallSpec("add", '{"a": 1, "b": 2}')], prompt_tokens=1000, completion_tokens=20)
    )
    replier = RecordingReplier()

    outcome = await asyncio.wait_for(service.handle(incoming("1+2?", "e1"), replier), ENDS_WITHIN)

    assert outcome is TurnOutcome.FAILED
    [error] = replier.errors
    assert isinstance(error, TurnTimedOut)
    assert (
        error.user_message
        == "This answer took longer than the 1 s time limit and was cut off. Please try again."
    )
    async with database.reader() as session:
        costs = (await session.execute(select(UsageRecord.cost_micros))).scalars().all()
    assert costs == [162]  # the first call completed: 1000 x 0.15 + 20 x 0.6
    assert await holds_and_spend(database) == ([(162, 0)], 0)
    assert await rows(database) == [("user", "failed"), ("assistant", "failed")]
    await llm.close()


async def test_a_turn_cancelled_at_shutdown_says_it_was_interrupted_and_releases_its_hold(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    budgets = Budgets(database, MINI, defaults_from(limits(user_daily_budget_usd=Decimal("1"))))
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm, budget=budgets)
    fake_openai.script(Stall("Half of the answer"))
    replier = RecordingReplier()
    turn = asyncio.create_task(service.handle(incoming("hello", "e1"), replier))

    await asyncio.wait_for(replier.streaming.wait(), ENDS_WITHIN)
    turn.cancel()
    done, _ = await asyncio.wait([turn], timeout=ENDS_WITHIN)

    assert done and turn.cancelled()
    [error] = replier.errors
    assert isinstance(error, TurnInterrupted) and error.user_message == INTERRUPTED_MESSAGE
    assert await holds_and_spend(database) == ([(0, 0)], 0)
    assert await rows(database) == [("user", "failed"), ("assistant", "failed")]
    async with database.reader() as session:
        status = await session.scalar(select(ProcessedEvent.status).where(ProcessedEvent.event_id == "e1"))
    assert status == "failed"
    await llm.close()
