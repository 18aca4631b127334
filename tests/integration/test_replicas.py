"""Two replicas on one database behave as one (issue 12): each replica is a ConversationService of its own
(its own in-process locks, caches and replica id) on the same SQLite file or PostgreSQL database, talking to
the OpenAI wire fake through the real SDK."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db.models import BudgetCounter, Message, ProcessedEvent, Replica, Reservation
from core.db.session import Database
from core.domain.errors import INTERRUPTED_MESSAGE
from core.domain.ports import CallPlan, FinishedTurn, Hold, ReplyLocation, TurnMessage
from core.domain.types import ConversationKey
from core.guards.rate_limit import RateLimitGuard, rate_limit_storage
from core.llm.tokens import TokenCounter
from core.money.budgets import Budgets, defaults_from
from core.money.pricing import ModelPrice, PriceTable, usd
from core.turn.recovery import Recovery
from core.turn.service import TurnOutcome
from core.turn.store import SqlTurnStore, TurnTakenOver
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.integration.test_budgets import (
    MINI,
    build,
    first_turn_prompt,
    limits,
    worst_case_responder,
    worst_micros,
)
from tests.support import RecordingReplier, incoming, make_llm, make_service

PRICES = PriceTable(fallback=ModelPrice(usd("1"), usd("1"), usd("4")), image_fallback=usd("0.25"))


def user_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def claims(database: Database) -> int:
    async with database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(ProcessedEvent)) or 0)


async def arrived(database: Database, count: int) -> None:
    for _ in range(2000):
        if await claims(database) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} claims never arrived")


async def status_of(database: Database, event_id: str) -> str | None:
    async with database.reader() as session:
        return await session.scalar(select(ProcessedEvent.status).where(ProcessedEvent.event_id == event_id))


async def test_quick_follow_ups_alternating_replicas_run_in_order(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    """Six follow-ups, each to the other replica while earlier ones still stream: each is answered once,
    in order, and each request holds every earlier question and answer."""
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    llm = make_llm(fake_openai.base_url)
    replicas = [make_service(database, llm), make_service(other, llm)]
    fake_openai.responder = lambda body: Reply(text=f"re: {user_texts(body)[-1]}", chunk_delay=0.02)
    repliers = [RecordingReplier() for _ in range(6)]
    tasks = []
    for i in range(6):
        message = incoming(f"m{i}", f"e{i}", thread="T-order")
        tasks.append(asyncio.create_task(replicas[i % 2].handle(message, repliers[i])))
        await arrived(database, i + 1)  # message i is claimed before i + 1 is sent
    outcomes = await asyncio.gather(*tasks)
    assert outcomes == [TurnOutcome.ANSWERED] * 6
    assert [r.finished for r in repliers] == [[f"re: m{i}"] for i in range(6)]
    requests = fake_openai.chat_requests()
    assert [user_texts(r) for r in requests] == [[f"m{j}" for j in range(i + 1)] for i in range(6)]
    for i, request in enumerate(requests):  # every earlier answer too, whichever replica gave it
        answers = [m["content"] for m in request["messages"] if m["role"] == "assistant"]
        assert answers == [f"re: m{j}" for j in range(i)]
    await llm.close()
    await other.close()


async def test_the_same_event_sent_to_both_replicas_gets_one_reply(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    replicas = [make_service(database, llm), make_service(database, llm)]
    repliers = [RecordingReplier(), RecordingReplier()]
    outcomes = await asyncio.gather(
        *(
            replica.handle(incoming("hello", "evt-both"), replier)
            for replica, replier in zip(replicas, repliers, strict=True)
        )
    )
    assert sorted(outcomes) == [TurnOutcome.ANSWERED, TurnOutcome.DUPLICATE]
    assert sum(len(r.finished) for r in repliers) == 1
    assert len(fake_openai.chat_requests()) == 1
    await llm.close()


async def test_model_and_reset_given_to_one_replica_are_honoured_by_the_other(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    first, second = make_service(database, llm), make_service(database, llm)
    key = incoming("x", "unused", thread="T-shared").key
    assert (
        await second.handle(incoming("one", "s1", thread="T-shared"), RecordingReplier())
        == TurnOutcome.ANSWERED
    )
    assert (
        await second.handle(incoming("two", "s2", thread="T-shared"), RecordingReplier())
        == TurnOutcome.ANSWERED
    )

    await first.set_model(key, "gpt-4.1-mini")
    await second.handle(incoming("three", "s3", thread="T-shared"), RecordingReplier())
    assert fake_openai.chat_requests()[-1]["model"] == "gpt-4.1-mini"

    await first.reset(key)  # the second replica has this thread's history cached
    await second.handle(incoming("four", "s4", thread="T-shared"), RecordingReplier())
    assert user_texts(fake_openai.chat_requests()[-1]) == ["four"]
    await llm.close()


async def test_the_last_thread_of_a_user_is_known_to_every_replica(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    first, second = make_service(database, llm), make_service(database, llm)
    assert await second.last_thread("console", "W1", "C1", "U7") == ""
    await first.handle(incoming("hi", "lt1", thread="T-a", user_id="U7"), RecordingReplier())
    await first.handle(incoming("hi", "lt2", thread="T-b", user_id="U7"), RecordingReplier())
    await first.handle(incoming("hi", "lt3", thread="T-c", user_id="U8"), RecordingReplier())
    assert await second.last_thread("console", "W1", "C1", "U7") == "T-b"
    await llm.close()


class RecordingResolver:
    def __init__(self) -> None:
        self.resolved: list[tuple[ConversationKey, ReplyLocation | None, str]] = []

    async def resolve(self, key: ConversationKey, where: ReplyLocation | None, text: str) -> None:
        self.resolved.append((key, where, text))


async def held(database: Database) -> tuple[int, int]:
    async with database.reader() as session:
        reservations = await session.scalar(select(func.count()).select_from(Reservation))
        reserved = await session.scalar(select(func.coalesce(func.sum(BudgetCounter.reserved_micros), 0)))
    return int(reservations or 0), int(reserved or 0)


async def test_a_dead_replicas_turn_is_resolved_once_and_the_thread_goes_on(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    """A replica dies mid-turn (its claim stays, its placeholder is posted, its budget held): another
    replica shows the interruption where the reply is, releases the hold, and the follow-up that waited
    behind it is answered."""
    budgets = Budgets(database, PRICES, {("user", "day"): (usd("5"), None)})
    dead = SqlTurnStore(database, budgets, owner="dead-replica")
    stuck = incoming("first question", "dead-1", thread="T-dead")
    place = await dead.claim(stuck)
    assert place is not None and place.first
    await dead.locate(stuck, {"channel": "C1", "ts": "1700000000.000100"})
    await budgets.reserve(CallPlan(stuck, "gpt-4o-mini", 100, 200, 1))
    assert (await held(database))[0] == 1

    llm = make_llm(fake_openai.base_url)
    live = make_service(database, llm, budget=budgets, owner="live-replica")
    await Recovery(database, owner="live-replica").beat()
    follow_up = asyncio.create_task(
        live.handle(incoming("second question", "live-1", thread="T-dead"), RecordingReplier())
    )
    await asyncio.sleep(0.3)
    assert not follow_up.done()  # it waits behind the dead replica's turn
    assert fake_openai.chat_requests() == []

    resolver = RecordingResolver()
    alive = Recovery(database, owner="alive", holds=budgets, stale=timedelta(seconds=30))
    alive.register("console", resolver)
    await alive.beat()
    assert await alive.sweep() == 1
    assert resolver.resolved == [
        (stuck.key, {"channel": "C1", "ts": "1700000000.000100"}, INTERRUPTED_MESSAGE)
    ]
    assert await status_of(database, "dead-1") == "interrupted"
    assert await asyncio.wait_for(follow_up, 10) == TurnOutcome.ANSWERED
    assert user_texts(fake_openai.chat_requests()[0]) == ["second question"]
    assert await held(database) == (0, 0)  # the dead turn's hold went back, the live turn settled

    again = Recovery(database, owner="another", holds=budgets)
    again.register("console", RecordingResolver())
    assert await again.sweep() == 0  # resolved once
    await llm.close()


async def test_a_live_replicas_turns_are_left_alone(database: Database) -> None:
    busy = SqlTurnStore(database, owner="busy-replica")
    await Recovery(database, owner="busy-replica").beat()
    assert await busy.claim(incoming("long question", "busy-1", thread="T-busy")) is not None
    other = Recovery(database, owner="other")
    resolver = RecordingResolver()
    other.register("console", resolver)
    assert await other.sweep() == 0
    assert resolver.resolved == []
    assert await status_of(database, "busy-1") == "claimed"


async def test_a_stopped_replica_leaves_and_its_turns_are_resolved_at_once(database: Database) -> None:
    leaving = Recovery(database, owner="leaving")
    await leaving.beat()
    store = SqlTurnStore(database, owner="leaving")
    assert await store.claim(incoming("question", "left-1", thread="T-left")) is not None
    await leaving.leave()
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Replica)) == 0
    other = Recovery(database, owner="other")
    resolver = RecordingResolver()
    other.register("console", resolver)
    assert await other.sweep() == 1
    assert [where for _, where, _ in resolver.resolved] == [None]  # nothing was posted: said in the thread


async def test_a_turn_resolved_by_another_replica_stores_nothing(database: Database) -> None:
    """A replica presumed dead (no heartbeat) that was only slow finds its turn resolved: it stores nothing,
    so the conversation holds no answer twice."""
    slow = SqlTurnStore(database, owner="slow-replica")
    message = incoming("question", "slow-1", thread="T-slow")
    assert await slow.claim(message) is not None
    recovery = Recovery(database, owner="other")
    recovery.register("console", RecordingResolver())
    assert await recovery.sweep() == 1
    conversation = await make_conversation(database, message.key)
    user = TurnMessage("user", [{"type": "text", "text": "question"}], {"role": "user", "content": "q"}, 5)
    turn = FinishedTurn(message, conversation, [user], [], "o200k_base")
    try:
        await slow.persist(turn, Hold(None, 0, 0, message), [])
    except TurnTakenOver:
        pass
    else:
        raise AssertionError("a resolved turn was stored")
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    assert await status_of(database, "slow-1") == "interrupted"


async def make_conversation(database: Database, key: ConversationKey) -> int:
    from core.db.repositories import ConversationRepository

    async with database.unit_of_work() as session:
        return (await ConversationRepository(session).get_or_create(key)).id


async def test_a_budget_is_shared_exactly_by_two_replicas(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    counter = TokenCounter()
    per_turn = worst_micros(first_turn_prompt(counter, "question"))
    budget = Decimal(per_turn * 3 + per_turn // 2) / 1_000_000  # three turns fit, a fourth does not
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    llm = make_llm(fake_openai.base_url)
    replicas = [
        build(db, llm, Budgets(db, MINI, defaults_from(limits(user_daily_budget_usd=budget))))
        for db in (database, other)
    ]
    fake_openai.responder = worst_case_responder(counter)
    outcomes = await asyncio.gather(
        *(
            replicas[i % 2].handle(incoming("question", f"b{i}", thread=f"T-b{i}"), RecordingReplier())
            for i in range(12)
        )
    )
    assert outcomes.count(TurnOutcome.ANSWERED) == 3
    assert await held(database) == (0, 0)
    await llm.close()
    await other.close()


async def test_the_redis_rate_limit_is_shared_exactly_by_two_replicas(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("TEST_REDIS_URL is not set (Redis tests run in CI)")
    storages = [rate_limit_storage(redis_url), rate_limit_storage(redis_url)]
    await storages[0].reset()
    llm = make_llm(fake_openai.base_url)
    replicas = [
        make_service(database, llm, guards=[RateLimitGuard(storage, per_user="3/minute")])
        for storage in storages
    ]
    outcomes = [
        await replicas[i % 2].handle(incoming("hi", f"r{i}", thread=f"T-r{i}"), RecordingReplier())
        for i in range(7)
    ]
    assert outcomes == [TurnOutcome.ANSWERED] * 3 + [TurnOutcome.FAILED] * 4
    await llm.close()
