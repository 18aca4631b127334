"""The Stop button's core: a running answer stops at once on whichever replica runs it (a PostgreSQL
LISTEN/NOTIFY channel between replicas; SQLite serves one process), keeps what was streamed with a note,
and is charged and stored. Each replica is a ConversationService of its own on the same database, with the
real openai SDK against the OpenAI fake."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from core.answers.buttons import AnswerButtons
from core.answers.stops import StopChannel
from core.db.models import Message, ProcessedEvent
from core.db.notices import Notices
from core.db.session import Database
from core.domain.errors import NotAuthorized
from core.domain.types import ChatUser
from core.turn.service import ConversationService, TurnOutcome
from tests.fakes.openai_api import FakeOpenAI, Stall
from tests.support import RecordingReplier, incoming, make_llm, make_service

ASKER = ChatUser("console", "U1", "Alice")


def buttons_of(database: Database, service: ConversationService) -> AnswerButtons:
    return AnswerButtons(
        database, StopChannel(database, service.running), is_admin=lambda user: user.is_admin
    )


async def streaming(replier: RecordingReplier) -> int:
    await asyncio.wait_for(replier.streaming.wait(), 15)
    assert replier.answer_id is not None
    return replier.answer_id


async def stored_answer(database: Database) -> list[str]:
    async with database.reader() as session:
        kept = select(Message).where(Message.role == "assistant", Message.status == "ok")
        rows = await session.scalars(kept)
        return [row.content[0]["text"] for row in rows]


async def test_stop_on_the_same_replica(database: Database, fake_openai: FakeOpenAI) -> None:
    service = make_service(database, make_llm(fake_openai.base_url))
    buttons = buttons_of(database, service)
    fake_openai.script(Stall(text="So far, so good"))
    replier = RecordingReplier()
    turn = asyncio.create_task(service.handle(incoming("tell me", "e1"), replier))
    answer = await streaming(replier)

    with pytest.raises(NotAuthorized):
        await buttons.stop(answer, ChatUser("console", "U2", "Bob"))
    assert not turn.done()
    assert (await buttons.stop(answer, ASKER)).running

    assert await asyncio.wait_for(turn, 10) == TurnOutcome.ANSWERED
    [text] = replier.finished
    assert text.startswith("So far, so good") and text.endswith("_Stopped by Alice._")
    assert await stored_answer(database) == ["So far, so good"]
    assert not (await buttons.stop(answer, ASKER)).running  # finished: nothing left to stop


async def test_stop_clicked_on_another_replica(database: Database, fake_openai: FakeOpenAI) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite serves one process: a stop is always local")
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    llm = make_llm(fake_openai.base_url)
    running, clicked = make_service(database, llm), make_service(other, llm)
    owner, elsewhere = buttons_of(database, running), buttons_of(other, clicked)
    fake_openai.script(Stall(text="Half of it"))
    replier = RecordingReplier()
    async with owner.listening(), elsewhere.listening():
        turn = asyncio.create_task(running.handle(incoming("tell me", "e1"), replier))
        answer = await streaming(replier)

        assert (await elsewhere.stop(answer, ASKER)).running

        assert await asyncio.wait_for(turn, 10) == TurnOutcome.ANSWERED
    [text] = replier.finished
    assert text.startswith("Half of it") and "_Stopped by Alice._" in text
    async with database.reader() as session:
        assert await session.scalar(select(ProcessedEvent.status)) == "done"
    await other.close()


async def test_stops_are_heard_again_after_the_listening_connection_broke(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite serves one process: nothing listens")
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    llm = make_llm(fake_openai.base_url)
    running, clicked = make_service(database, llm), make_service(other, llm)
    channel = StopChannel(database, running.running)
    elsewhere = buttons_of(other, clicked)
    fake_openai.script(Stall(text="Still here"))
    replier = RecordingReplier()
    async with channel.listening(check_every=0.05):
        async with other.unit_of_work() as session:  # e.g. the database restarted under it
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        turn = asyncio.create_task(running.handle(incoming("tell me", "e1"), replier))
        answer = await streaming(replier)
        for _ in range(400):  # listening again on a new connection
            if channel.connections >= 2:
                break
            await asyncio.sleep(0.05)
        assert channel.connections == 2
        assert (await elsewhere.stop(answer, ASKER)).running
        assert await asyncio.wait_for(turn, 10) == TurnOutcome.ANSWERED
    [text_shown] = replier.finished
    assert "_Stopped by Alice._" in text_shown
    await other.close()


async def test_a_stop_clicked_while_the_listening_connection_is_down_is_heard_when_it_is_back(
    database: Database, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """The replica running the answer has lost its listening connection (a database restart, a network
    blip; it listens again within about 32 s) when Stop is clicked on another replica: the stop notice is
    lost for it, but the stop is recorded with the answer's claim, and the replica finds it when it listens
    again: the answer stops then."""
    if database.is_sqlite:
        pytest.skip("SQLite serves one process: nothing listens")
    other = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    llm = make_llm(fake_openai.base_url)
    running, clicked = make_service(database, llm), make_service(other, llm)
    notices = Notices(database)
    channel = StopChannel(database, running.running, notices)
    elsewhere = buttons_of(other, clicked)
    fake_openai.script(Stall(text="Still going"))
    replier = RecordingReplier()
    async with channel.listening(check_every=0.05):
        turn = asyncio.create_task(running.handle(incoming("tell me", "e1"), replier))
        answer = await streaming(replier)
        async with other.unit_of_work() as session:  # e.g. the database restarted under it
            killed = text("SELECT pg_terminate_backend(:pid)")
            assert await session.scalar(killed, {"pid": notices.listener_pid})
        for _ in range(400):  # the listener has seen its connection break: it listens again in 2 s
            if any("notices between replicas" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)

        assert (await elsewhere.stop(answer, ASKER)).running
        assert channel.connections == 1  # clicked while nothing listened: the notice went unheard

        assert await asyncio.wait_for(turn, 30) == TurnOutcome.ANSWERED
        assert channel.connections == 2
    [text_shown] = replier.finished
    assert text_shown.startswith("Still going") and text_shown.endswith("_Stopped by Alice._")
    assert await stored_answer(database) == ["Still going"]
    await other.close()
