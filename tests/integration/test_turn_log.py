"""Every turn ends with one log line holding its context and cost, refused and failed turns too, and never
the message text or the user's id (issue 17)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.db.session import Database
from core.guards.rate_limit import RateLimitGuard, rate_limit_storage
from core.money.budgets import Budgets
from core.money.pricing import ModelPrice, PriceTable, usd
from core.turn.service import TurnOutcome
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingReplier, incoming, make_llm, make_service

PRICES = PriceTable(fallback=ModelPrice(usd("1"), usd("1"), usd("4")), image_fallback=usd("0.25"))


def turn_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.fields for record in caplog.records if isinstance(getattr(record, "fields", None), dict)]


async def test_answered_and_refused_turns_each_log_one_line(
    database: Database, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.turn.pipeline")
    llm = make_llm(fake_openai.base_url)
    limiter = RateLimitGuard(rate_limit_storage(None), per_user="1/minute")
    service = make_service(database, llm, guards=[limiter], budget=Budgets(database, PRICES, {}))
    first = await service.handle(incoming("the secret plan", "log-1", user_id="U0SECRET"), RecordingReplier())
    second = await service.handle(
        incoming("the secret plan", "log-2", user_id="U0SECRET"), RecordingReplier()
    )
    assert (first, second) == (TurnOutcome.ANSWERED, TurnOutcome.FAILED)
    answered, refused = turn_lines(caplog)
    assert answered["outcome"] == "answered" and "reason" not in answered
    assert answered["model"] == "gpt-4o-mini" and answered["conversation_id"] is not None
    assert answered["prompt_tokens"] > 0 and answered["completion_tokens"] > 0 and answered["cost_usd"] > 0
    assert (refused["outcome"], refused["reason"], refused["event_id"]) == ("failed", "RateLimited", "log-2")
    assert refused["prompt_tokens"] == 0 and refused["cost_usd"] == 0
    assert answered["user"] == refused["user"] != "U0SECRET"
    logged = caplog.text + repr([record.__dict__ for record in caplog.records])
    assert "secret plan" not in logged and "U0SECRET" not in logged
    await llm.close()
