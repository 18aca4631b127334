"""Retention purge (injectable clock) and erasure of one user's data, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from core.admin.retention import Retention
from core.db.models import (
    Attachment,
    Conversation,
    Message,
    ModerationEvent,
    ProcessedEvent,
    ToolCallRecord,
    UsageRecord,
)
from core.db.session import Database
from core.domain.errors import BadInput
from core.domain.types import Attachment as Upload
from core.domain.types import ChatUser, IncomingMessage
from core.guards.audit import ModerationAudit
from core.guards.moderation import ModerationGuard, ModerationPolicy, Moderator
from core.money.budgets import Budgets
from core.money.pricing import ModelPrice, PriceTable
from tests.fakes.openai_api import FakeOpenAI, png_bytes
from tests.support import RecordingReplier, incoming, key, make_llm, make_service


def service(database: Database, fake: FakeOpenAI):  # type: ignore[no-untyped-def]
    llm = make_llm(fake.base_url)
    audit = ModerationAudit(database)
    prices = PriceTable(fallback=ModelPrice(1, 1, 1), image_fallback=1)
    budgets = Budgets(database, prices, {})
    guard = ModerationGuard(Moderator(llm.sdk, ModerationPolicy()), audit)
    return make_service(database, llm, guards=[guard], budget=budgets), llm


async def count(database: Database, column, *where) -> int:  # type: ignore[no-untyped-def]
    async with database.reader() as session:
        return int((await session.execute(select(func.count(column)).where(*where))).scalar_one())


async def test_purge_removes_old_content_and_anonymises_the_ledger(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    svc, llm = service(database, fake_openai)
    picture = (Upload("p.png", "image/png", png_bytes(8, 8)),)
    await svc.handle(incoming("old question", "e1", thread="old", attachments=picture), RecordingReplier())
    await svc.handle(incoming("fresh question", "e2", thread="fresh"), RecordingReplier())
    later = datetime.now(UTC) + timedelta(days=40)
    async with database.unit_of_work() as session:  # the "fresh" thread was active on day 40
        await session.execute(
            update(Conversation).where(Conversation.thread_id == "fresh").values(updated_at=later)
        )

    summary = await Retention(database, clock=lambda: later + timedelta(hours=1)).purge(30)

    assert (summary.conversations, summary.messages) == (1, 2)
    assert await count(database, Attachment.id) == 0
    texts = await count(database, Message.id)
    assert texts == 2  # the fresh thread's question and answer
    assert await count(database, Conversation.id) == 2  # rows stay; their content went
    assert await count(database, ModerationEvent.id) == 0  # all input decisions were older than 30 days
    assert await count(database, ProcessedEvent.id) == 0
    assert await count(database, UsageRecord.id) == 2  # kept for reports …
    assert await count(database, UsageRecord.id, UsageRecord.user_id.is_not(None)) == 0  # … without users
    await llm.close()


async def test_purge_keeps_everything_younger_than_the_retention(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    svc, llm = service(database, fake_openai)
    await svc.handle(incoming("question", "e1"), RecordingReplier())
    summary = await Retention(database, clock=lambda: datetime.now(UTC) + timedelta(days=29)).purge(30)
    assert summary.messages == summary.moderation_events == summary.usage_rows_anonymised == 0
    assert await count(database, Message.id) == 2
    await llm.close()


async def test_erasure_removes_everything_of_one_user_and_nothing_of_others(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    svc, llm = service(database, fake_openai)
    shared = "shared"
    await svc.handle(incoming("ada asks", "e1", thread=shared, user_id="ADA"), RecordingReplier())
    await svc.handle(incoming("bob asks", "e2", thread=shared, user_id="BOB"), RecordingReplier())
    await svc.handle(incoming("ada again", "e3", thread=shared, user_id="ADA"), RecordingReplier())
    await svc.handle(incoming("ada alone", "e4", thread="private", user_id="ADA"), RecordingReplier())
    await svc.handle(incoming("bob alone", "e5", thread="bobs", user_id="BOB"), RecordingReplier())
    async with database.unit_of_work() as session:  # calls the model made for each of them
        for user in ("ADA", "BOB"):
            session.add(
                ToolCallRecord(
                    platform="console",
                    workspace_id="W1",
                    channel_id="C1",
                    user_id=user,
                    tool="fetch_url",
                    arguments=f'{{"url": "https://example.com/{user}"}}',
                    outcome="ok",
                    duration_ms=5,
                )
            )
    retention = Retention(database)

    preview = await retention.erasure_preview("console", "ADA")
    assert (preview.conversations, preview.messages, preview.moderation_events) == (2, 6, 3)
    erased = await retention.erase("console", "ADA")
    assert erased == preview

    async with database.reader() as session:
        left = (await session.execute(select(Message.role, Message.content).order_by(Message.id))).all()
    assert [(role, content[0]["text"]) for role, content in left] == [
        ("user", "bob asks"),
        ("assistant", "echo: bob asks"),
        ("user", "bob alone"),
        ("assistant", "echo: bob alone"),
    ]
    assert await count(database, ModerationEvent.id, ModerationEvent.user_id == "ADA") == 0
    assert await count(database, ModerationEvent.id, ModerationEvent.user_id == "BOB") == 2
    assert await count(database, UsageRecord.id, UsageRecord.user_id == "ADA") == 0
    assert await count(database, UsageRecord.id, UsageRecord.user_id == "BOB") == 2
    assert await count(database, UsageRecord.id) == 5
    assert await count(database, ToolCallRecord.id, ToolCallRecord.user_id == "ADA") == 0
    assert await count(database, ToolCallRecord.id, ToolCallRecord.user_id == "BOB") == 1
    assert (await retention.erasure_preview("console", "ADA")).empty

    # the shared thread goes on without Ada's part
    await svc.handle(
        IncomingMessage(key(shared), ChatUser("console", "BOB", "bob"), "next", "e6", datetime.now(UTC)),
        RecordingReplier(),
    )
    sent = fake_openai.chat_requests()[-1]["messages"]
    assert "ada" not in str(sent)
    await llm.close()


async def test_a_retention_below_one_day_is_refused(database: Database) -> None:
    with pytest.raises(BadInput, match="at least 1"):
        await Retention(database).purge(0)


async def test_erasure_elsewhere_reaches_a_cached_history_window(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    """Another process (or replica) erases Ada's part while this one holds the thread's window in memory."""
    svc, llm = service(database, fake_openai)
    await svc.handle(incoming("ada's secret is XYZZY", "e1", user_id="ADA"), RecordingReplier())
    await svc.handle(incoming("bob says hi", "e2", user_id="BOB"), RecordingReplier())  # Bob's is newest
    async with Database.from_url(database.engine.url.render_as_string(hide_password=False)) as other:
        await Retention(other).erase("console", "ADA")
    await svc.handle(incoming("bob again", "e3", user_id="BOB"), RecordingReplier())
    sent = str(fake_openai.chat_requests()[-1]["messages"])
    assert "XYZZY" not in sent and "bob says hi" in sent
    await llm.close()
