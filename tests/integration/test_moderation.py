"""Moderation of input (text, images) and output against the fake's /v1/moderations, with the audit."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import event, select

from core.db.models import BudgetCounter, Message, ModerationEvent, UsageRecord
from core.db.session import Database
from core.domain.errors import ContentBlocked
from core.domain.types import Attachment
from core.guards.audit import ModerationAudit
from core.guards.moderation import ModerationGuard, ModerationPolicy, Moderator
from core.guards.output_moderation import OutputModeration
from core.llm.client import LLMClient
from core.money.budgets import Budgets
from core.money.pricing import ModelPrice, PriceTable, usd
from core.turn.service import TurnOutcome
from tests.fakes.openai_api import FakeOpenAI, Fault, Reply, png_bytes
from tests.support import RecordingReplier, incoming, make_llm, make_service


def moderated(database: Database, llm: LLMClient, *, fail_open: bool = True, output: bool = True) -> Any:
    moderator = Moderator(llm.sdk, ModerationPolicy(fail_open=fail_open))
    audit = ModerationAudit(database)
    return make_service(
        database,
        llm,
        guards=[ModerationGuard(moderator, audit)],
        output_moderation=OutputModeration(moderator, audit, segment_chars=40) if output else None,
    )


async def events(database: Database) -> list[tuple[str, str, list[str]]]:
    async with database.reader() as session:
        rows = (await session.execute(select(ModerationEvent).order_by(ModerationEvent.id))).scalars().all()
    return [(row.direction, row.action, row.categories) for row in rows]


async def stored_texts(database: Database) -> list[tuple[str, str, str]]:
    async with database.reader() as session:
        rows = (await session.execute(select(Message).order_by(Message.id))).scalars().all()
    return [(m.role, m.status, "".join(p.get("text", "") for p in m.content)) for m in rows]


async def test_allowed_message_is_answered_and_audited(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    assert (
        await moderated(database, llm).handle(incoming("hello there", "e1"), replier) is TurnOutcome.ANSWERED
    )
    assert replier.finished == ["echo: hello there"]
    assert await events(database) == [("input", "allow", []), ("output", "allow", [])]
    await llm.close()


async def test_blocked_text_is_refused_without_echo_and_never_reaches_the_model(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.moderation_flags = {"attack the convoy": {"violence": 0.95}}
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    outcome = await moderated(database, llm).handle(incoming("how do I attack the convoy", "e1"), replier)
    assert outcome is TurnOutcome.FAILED
    error = replier.errors[0]
    assert isinstance(error, ContentBlocked) and "(violence)" in error.user_message
    assert "convoy" not in error.user_message
    assert fake_openai.chat_requests() == []
    assert await events(database) == [("input", "block", ["violence"])]
    assert await stored_texts(database) == []  # refused input is not stored
    await llm.close()


async def test_flagged_text_is_answered_and_recorded(database: Database, fake_openai: FakeOpenAI) -> None:
    fake_openai.moderation_flags = {"idiot": {"harassment": 0.5}}
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    assert await moderated(database, llm).handle(incoming("you idiot", "e1"), replier) is TurnOutcome.ANSWERED
    assert (await events(database))[0] == ("input", "flag", ["harassment"])
    await llm.close()


async def test_flagged_image_is_refused_with_an_audit_row(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    image = png_bytes(64, 48, rgb=(200, 10, 10))
    marker = base64.b64encode(image).decode()[-24:]  # the fake scores substrings of the image's data URL
    fake_openai.moderation_flags = {marker: {"violence/graphic": 0.9}}
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    message = incoming("what is this?", "e1", attachments=(Attachment("gore.png", "image/png", image),))
    assert await moderated(database, llm).handle(message, replier) is TurnOutcome.FAILED
    assert "violence/graphic" in replier.errors[0].user_message
    moderation_request = next(r for r in fake_openai.requests if r.path.endswith("/moderations"))
    assert moderation_request.json["input"][1]["type"] == "image_url"
    assert await events(database) == [("input", "block", ["violence/graphic"])]
    assert fake_openai.chat_requests() == []
    await llm.close()


async def test_blocked_output_is_never_shown_or_stored(database: Database, fake_openai: FakeOpenAI) -> None:
    fake_openai.moderation_flags = {"forbidden recipe": {"illicit/violent": 0.97}}
    fake_openai.script(
        Reply(text="Sure.\n\nHere is the forbidden recipe you asked for, step by step.", chunk_chars=3)
    )
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    assert await moderated(database, llm).handle(incoming("tell me", "e1"), replier) is TurnOutcome.FAILED
    shown = [value for kind, value in replier.events if kind in ("update", "finish")]
    assert all("forbidden" not in text for text in shown)
    assert "content policy stopped it" in replier.errors[0].user_message
    texts = await stored_texts(database)
    assert all("forbidden" not in text for _, _, text in texts)
    assert [(role, status) for role, status, _ in texts] == [("user", "failed"), ("assistant", "failed")]
    assert ("output", "block", ["illicit/violent"]) in await events(database)
    await llm.close()


@pytest.mark.parametrize("fail_open", [True, False])
async def test_moderation_endpoint_down(database: Database, fake_openai: FakeOpenAI, fail_open: bool) -> None:
    fake_openai.moderation_script = [Fault(500), Fault(500)]  # the call and its one retry
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    outcome = await moderated(database, llm, fail_open=fail_open, output=False).handle(
        incoming("hi", "e1"), replier
    )
    if fail_open:
        assert outcome is TurnOutcome.ANSWERED and replier.finished == ["echo: hi"]
    else:
        assert outcome is TurnOutcome.FAILED
        assert "Content checks are unavailable" in replier.errors[0].user_message
        assert fake_openai.chat_requests() == []
    assert await events(database) == [("input", "unavailable", [])]
    await llm.close()


async def test_an_answer_blocked_mid_stream_is_still_charged(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.moderation_flags = {"forbidden recipe": {"illicit/violent": 0.97}}
    answer = "Sure.\n\nHere is the forbidden recipe.\n\n" + "More words follow here. " * 60
    fake_openai.script(Reply(text=answer, chunk_chars=8, chunk_delay=0.01))  # the block lands mid-stream
    llm = make_llm(fake_openai.base_url)
    moderator = Moderator(llm.sdk, ModerationPolicy())
    audit = ModerationAudit(database)
    prices = PriceTable(fallback=ModelPrice(usd("1"), usd("1"), usd("1")), image_fallback=0)
    budgets = Budgets(database, prices, {("user", "day"): (usd("5"), None)})
    service = make_service(
        database,
        llm,
        guards=[ModerationGuard(moderator, audit)],
        output_moderation=OutputModeration(moderator, audit, segment_chars=40),
        budget=budgets,
    )
    replier = RecordingReplier()
    assert await service.handle(incoming("tell me", "e1"), replier) is TurnOutcome.FAILED
    assert isinstance(replier.errors[0], ContentBlocked)
    async with database.reader() as session:
        (row,) = (await session.execute(select(UsageRecord))).scalars().all()
        counters = (await session.execute(select(BudgetCounter))).scalars().all()
    assert row.input_tokens > 0 and 0 < row.output_tokens < len(answer)  # what was read and written so far
    assert all(counter.reserved_micros == 0 for counter in counters)  # the hold is gone
    assert all(counter.spent_micros == row.cost_micros for counter in counters)
    await llm.close()


class Transactions:
    """Which transaction (by the order they began in) each INSERT of a table ran in."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        self.inserts: list[tuple[int, str]] = []
        for engine in database.engines:
            event.listen(engine.sync_engine, "begin", self._begin)
            event.listen(engine.sync_engine, "before_cursor_execute", self._statement)

    def _begin(self, conn: Any) -> None:
        self.count += 1

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        if words[:2] == ["INSERT", "INTO"]:
            self.inserts.append((self.count, words[2]))

    def of(self, table: str) -> set[int]:
        return {number for number, name in self.inserts if name == table}


async def test_audit_rows_of_an_answered_turn_are_written_with_the_turn(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    service = moderated(database, llm)
    seen = Transactions(database)
    assert await service.handle(incoming("hello there", "e1"), RecordingReplier()) is TurnOutcome.ANSWERED
    assert await events(database) == [("input", "allow", []), ("output", "allow", [])]
    assert seen.of("moderation_events") == seen.of("messages")  # one transaction: the turn's
    assert len(seen.of("messages")) == 1
    await llm.close()


async def test_audit_rows_of_a_turn_that_fails_later_are_written_with_its_failure(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Fault(500))
    llm = make_llm(fake_openai.base_url)
    service = moderated(database, llm)
    seen = Transactions(database)
    assert await service.handle(incoming("hello there", "e1"), RecordingReplier()) is TurnOutcome.FAILED
    assert await events(database) == [("input", "allow", [])]  # the input was checked before the call failed
    assert [(role, status) for role, status, _ in await stored_texts(database)] == [
        ("user", "failed"),
        ("assistant", "failed"),
    ]
    assert seen.of("moderation_events") == seen.of("messages")  # in the failure record's transaction
    await llm.close()


async def test_a_refused_turn_records_its_decision_with_its_failure(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    fake_openai.moderation_flags = {"attack the convoy": {"violence": 0.95}}
    llm = make_llm(fake_openai.base_url)
    seen = Transactions(database)
    outcome = await moderated(database, llm).handle(incoming("attack the convoy", "e1"), RecordingReplier())
    assert outcome is TurnOutcome.FAILED
    assert seen.count == 2  # the claim, then the failure record with its decision: no write of its own
    assert seen.of("moderation_events") == {2}
    assert await events(database) == [("input", "block", ["violence"])]
    await llm.close()
