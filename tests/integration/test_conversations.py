"""ConversationService end to end: real database (SQLite, and PostgreSQL with TEST_DATABASE_URL), the real
openai SDK against the wire fake, exact token counts with the real o200k_base tables."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
import tiktoken
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from core.db.models import Conversation, Message, ProcessedEvent
from core.db.session import Database
from core.domain.errors import BadInput, LLMUnavailable, RateLimited
from core.domain.ports import ToolResult
from core.domain.types import Attachment, IncomingMessage
from core.llm.types import ToolCall
from core.turn.service import TurnOutcome
from tests.fakes.openai_api import Disconnect, FakeOpenAI, Fault, Hang, Reply, ToolCallSpec, png_bytes
from tests.support import RecordingReplier, incoming, make_llm, make_service


def texts(request: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in request["messages"]]


async def stored(database: Database) -> list[Message]:
    async with database.reader() as session:
        statement = select(Message).options(selectinload(Message.attachments)).order_by(Message.id)
        return list((await session.execute(statement)).scalars())


async def test_multi_turn_conversation_survives_restart(database_url: str, fake_openai: FakeOpenAI) -> None:
    from core.db import migrate

    first = Database.from_url(database_url)
    await migrate.upgrade(first.engine)
    llm = make_llm(fake_openai.base_url)
    service = make_service(first, llm)
    fake_openai.script(Reply(text="Nice to meet you, Ada."), Reply(text="Your name is Ada."))
    replier = RecordingReplier()
    assert await service.handle(incoming("My name is Ada.", "e1"), replier) is TurnOutcome.ANSWERED
    assert await service.handle(incoming("What is my name?", "e2"), replier) is TurnOutcome.ANSWERED
    assert replier.finished == ["Nice to meet you, Ada.", "Your name is Ada."]
    assert texts(fake_openai.chat_requests()[1]) == [
        ("system", "You are a test assistant."),
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]
    await first.close()
    await llm.close()

    # A new process: new engine, new service, empty caches.
    second = Database.from_url(database_url)
    llm = make_llm(fake_openai.base_url)
    service = make_service(second, llm)
    await service.handle(incoming("And again?", "e3"), RecordingReplier())
    assert [content for _, content in texts(fake_openai.chat_requests()[2])][1:] == [
        "My name is Ada.",
        "Nice to meet you, Ada.",
        "What is my name?",
        "Your name is Ada.",
        "And again?",
    ]
    request = fake_openai.chat_requests()[2]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert request["max_completion_tokens"] == 256
    await second.close()
    await llm.close()


async def test_streaming_updates_grow_to_the_final_text(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    fake_openai.script(Reply(text="one two three four five", chunk_chars=5))
    replier = RecordingReplier()
    await make_service(database, llm).handle(incoming("count", "e1"), replier)
    updates = [value for kind, value in replier.events if kind == "update"]
    assert len(updates) == 5
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(updates))
    assert replier.events[0] == ("start", None) and replier.events[-1] == (
        "finish",
        "one two three four five",
    )
    await llm.close()


def o200k_message_tokens(role: str, content: str) -> int:
    encoding = tiktoken.get_encoding("o200k_base")
    return 3 + len(encoding.encode(role)) + len(encoding.encode(content))


@pytest.mark.needs_token_tables("trims history at the window by o200k_base's exact counts")
async def test_history_is_trimmed_exactly_at_the_window(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    answers = [f"Answer number {i}: the quick brown fox jumps over the lazy dog." for i in range(6)]
    fake_openai.script(*(Reply(text=a) for a in answers))
    questions = [f"Question {i}: tell me something about foxes and dogs." for i in range(6)]
    system = "You are a test assistant."
    max_output = 100
    pair = [o200k_message_tokens("user", questions[0]), o200k_message_tokens("assistant", answers[0])]
    # The window fits exactly: system + 2 earlier pairs + the new question + reply priming + the answer.
    fixed = o200k_message_tokens("system", system) + 3 + max_output
    window = fixed + 2 * sum(pair) + o200k_message_tokens("user", questions[5])
    assert all(o200k_message_tokens("user", q) == pair[0] for q in questions)
    assert all(o200k_message_tokens("assistant", a) == pair[1] for a in answers)
    service = make_service(
        database,
        llm,
        system_prompt=system,
        max_output_tokens=max_output,
        context_windows={"gpt-4o-mini": window},
    )
    for i in range(6):
        await service.handle(incoming(questions[i], f"e{i}"), RecordingReplier())
    last = [content for _, content in texts(fake_openai.chat_requests()[5])]
    assert last == [system, questions[3], answers[3], questions[4], answers[4], questions[5]]

    # One token less and the oldest turn no longer fits: turns are dropped whole, oldest first.
    fake_openai.script(Reply(text="x"))
    tight = make_service(
        database,
        llm,
        system_prompt=system,
        max_output_tokens=max_output,
        context_windows={"gpt-4o-mini": window - 1},
    )
    await tight.handle(incoming(questions[5], "e-tight"), RecordingReplier())
    contents = [content for _, content in texts(fake_openai.chat_requests()[6])]
    assert contents == [system, questions[5], answers[5], questions[5]]
    await llm.close()


async def test_a_message_larger_than_the_window_is_refused(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm, max_output_tokens=100, context_windows={"gpt-4o-mini": 300})
    replier = RecordingReplier()
    assert await service.handle(incoming("word " * 400, "e1"), replier) is TurnOutcome.FAILED
    assert isinstance(replier.errors[0], BadInput) and "too long" in replier.errors[0].user_message
    assert fake_openai.chat_requests() == []
    await llm.close()


async def test_a_redelivered_event_is_answered_once(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm)
    first, again = RecordingReplier(), RecordingReplier()
    assert await service.handle(incoming("hello", "slack:C1:1700000000.0001"), first) is TurnOutcome.ANSWERED
    assert await service.handle(incoming("hello", "slack:C1:1700000000.0001"), again) is TurnOutcome.DUPLICATE
    assert len(fake_openai.chat_requests()) == 1
    assert again.events == []
    await llm.close()


async def test_concurrent_copies_of_one_event_on_two_replicas_answer_once(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    # Two services share the database but not their in-process locks, like two replicas.
    replicas = [make_service(database, llm), make_service(database, llm)]
    repliers = [RecordingReplier() for _ in range(6)]
    outcomes = await asyncio.gather(
        *(replicas[i % 2].handle(incoming("hi", "evt-dup"), repliers[i]) for i in range(6))
    )
    assert sorted(outcomes) == sorted([TurnOutcome.ANSWERED] + [TurnOutcome.DUPLICATE] * 5)
    assert len(fake_openai.chat_requests()) == 1
    assert sum(len(r.finished) for r in repliers) == 1
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 1
    await llm.close()


async def test_turns_of_one_conversation_run_in_arrival_order(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm)
    fake_openai.responder = lambda body: Reply(
        text=f"re: {body['messages'][-1]['content']}", chunk_delay=0.002
    )
    count = 8
    await asyncio.gather(
        *(service.handle(incoming(f"m{i}", f"e{i}"), RecordingReplier()) for i in range(count))
    )
    requests = fake_openai.chat_requests()
    assert [r["messages"][-1]["content"] for r in requests] == [f"m{i}" for i in range(count)]
    # Each turn saw every earlier turn, answered: strictly one at a time.
    for i, request in enumerate(requests):
        assert len(request["messages"]) == 1 + 2 * i + 1
    await llm.close()


async def test_different_conversations_do_not_wait_for_each_other(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm)
    fake_openai.responder = lambda body: (
        Reply(text="slow " * 20, chunk_chars=5, chunk_delay=0.05)
        if body["messages"][-1]["content"] == "slow"
        else Reply(text="fast")
    )
    finished: list[str] = []
    streaming = asyncio.Event()

    class SignallingReplier(RecordingReplier):
        async def update(self, text: str) -> None:
            streaming.set()
            await super().update(text)

    async def turn(text: str, thread: str) -> None:
        await service.handle(incoming(text, f"e-{thread}", thread=thread), SignallingReplier())
        finished.append(text)

    slow = asyncio.create_task(turn("slow", "A"))
    await streaming.wait()
    await turn("fast", "B")
    assert finished == ["fast"]  # B completed while A was still streaming
    await slow
    assert finished == ["fast", "slow"]
    await llm.close()


@pytest.mark.parametrize(
    ("fault", "error_type", "words"),
    [
        (
            Fault(429, code="rate_limit_exceeded", retry_after=20),
            RateLimited,
            "try again in about 20 seconds",
        ),
        (Fault(429, code="insufficient_quota"), LLMUnavailable, "run out of credit"),
        (Fault(500), LLMUnavailable, "having problems"),
        (Fault(400, code="context_length_exceeded"), BadInput, "too long"),
        (Hang(5), LLMUnavailable, "took too long"),
        (Disconnect(text="a partial answer that breaks", after_chars=9), LLMUnavailable, "can't reach"),
    ],
    ids=["429", "quota", "500", "context", "timeout", "disconnect"],
)
async def test_provider_failures_give_a_clear_error_and_consistent_history(
    database: Database, fake_openai: FakeOpenAI, fault: Any, error_type: type, words: str
) -> None:
    llm = make_llm(fake_openai.base_url, timeout=0.5)
    service = make_service(database, llm)
    fake_openai.script(Reply(text="first answer"), fault, Reply(text="third answer"))
    await service.handle(incoming("first", "e1"), RecordingReplier())
    replier = RecordingReplier()
    assert await service.handle(incoming("second", "e2"), replier) is TurnOutcome.FAILED
    assert len(replier.errors) == 1 and isinstance(replier.errors[0], error_type)
    assert words in replier.errors[0].user_message
    assert replier.finished == []
    await service.handle(incoming("third", "e3"), RecordingReplier())
    # The failed turn is kept as a hidden pair; the model never sees it, nothing half-written is stored.
    assert [content for _, content in texts(fake_openai.chat_requests()[-1])][1:] == [
        "first",
        "first answer",
        "third",
    ]
    rows = await stored(database)
    assert [(m.role, m.status, m.content[0]["text"] if m.content else None) for m in rows] == [
        ("user", "ok", "first"),
        ("assistant", "ok", "first answer"),
        ("user", "failed", "second"),
        ("assistant", "failed", replier.errors[0].user_message),
        ("user", "ok", "third"),
        ("assistant", "ok", "third answer"),
    ]
    async with database.reader() as session:
        statuses = dict((await session.execute(select(ProcessedEvent.event_id, ProcessedEvent.status))).all())
    assert statuses == {"e1": "done", "e2": "failed", "e3": "done"}
    await llm.close()


async def test_sdk_retries_a_429_and_the_user_gets_the_answer(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url, max_retries=2)
    fake_openai.script(Fault(429, code="rate_limit_exceeded", retry_after=0.05), Reply(text="made it"))
    replier = RecordingReplier()
    assert await make_service(database, llm).handle(incoming("hi", "e1"), replier) is TurnOutcome.ANSWERED
    assert replier.finished == ["made it"] and len(fake_openai.chat_requests()) == 2
    await llm.close()


@pytest.mark.needs_token_tables(
    "checks the stored token count of a text-and-image message against o200k_base"
)
async def test_an_image_reaches_the_model_as_a_vision_part(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm)
    image = png_bytes(640, 480)
    message = incoming("what is this?", "e1", attachments=(Attachment("photo.png", "image/png", image),))
    await service.handle(message, RecordingReplier())
    await service.handle(incoming("and now?", "e2"), RecordingReplier())
    import base64

    expected_url = "data:image/png;base64," + base64.b64encode(image).decode()
    for request in fake_openai.chat_requests():  # the image is replayed from the database on the next turn
        content = request["messages"][1]["content"]
        assert content == [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": expected_url, "detail": "auto"}},
        ]
    rows = await stored(database)
    assert rows[0].attachments[0].data == image and rows[0].attachments[0].width == 640
    # gpt-4o-mini image tokens: 640x480 is one 512px tile wide... 2 x 1 tiles -> 2833 + 2 * 5667.
    text_tokens = o200k_message_tokens("user", "what is this?")
    assert rows[0].token_count == text_tokens + 2833 + 2 * 5667
    await llm.close()


async def test_unreadable_attachment_is_refused_clearly(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    replier = RecordingReplier()
    message = incoming(
        "see file",
        "e1",
        attachments=(Attachment("blob.bin", "application/octet-stream", b"\xff\xfe\x00\x81"),),
    )
    assert await make_service(database, llm).handle(message, replier) is TurnOutcome.FAILED
    assert "blob.bin" in replier.errors[0].user_message
    assert fake_openai.chat_requests() == []
    await llm.close()


class Calculator:
    """A minimal ToolRunner for the loop (real tools come with the tools issue)."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def definitions(self, message: IncomingMessage) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]

    async def run(
        self, calls: Any, message: IncomingMessage, conversation_id: int | None = None, **_: Any
    ) -> list[ToolResult]:
        self.calls.extend(calls)
        results = []
        for call in calls:
            try:
                args = json.loads(call.arguments)
                results.append(ToolResult(call.id, str(args["a"] + args["b"])))
            except (ValueError, KeyError) as exc:
                results.append(ToolResult(call.id, json.dumps({"error": f"bad arguments: {exc}"})))
        return results


async def test_tool_calls_run_and_are_replayed_as_pairs_after_restart(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    tools = Calculator()
    service = make_service(database, llm, tools=tools)
    fake_openai.script(
        Reply(
            tool_calls=[
                ToolCallSpec("add", '{"a": 2, "b": 3}', id="c1"),
                ToolCallSpec("add", '{"a": 1', id="c2"),
            ]
        ),
        Reply(text="2+3 is 5; the second call was malformed."),
        Reply(text="later"),
    )
    replier = RecordingReplier()
    await service.handle(incoming("add things", "e1"), replier)
    assert [(c.id, c.arguments) for c in tools.calls] == [("c1", '{"a": 2, "b": 3}'), ("c2", '{"a": 1')]
    assert ("status", "Using add…") in replier.events
    assert replier.finished == ["2+3 is 5; the second call was malformed."]
    second = fake_openai.chat_requests()[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool"]
    assert second[3] == {"role": "tool", "tool_call_id": "c1", "content": "5"}

    restarted = Database.from_url(database.engine.url.render_as_string(hide_password=False))
    fresh = make_service(restarted, llm, tools=tools)
    await fresh.handle(incoming("again", "e2"), RecordingReplier())
    await restarted.close()
    replay = fake_openai.chat_requests()[2]["messages"]
    assert [m["role"] for m in replay] == ["system", "user", "assistant", "tool", "tool", "assistant", "user"]
    assert replay[2]["tool_calls"][1]["function"]["arguments"] == '{"a": 1'
    await llm.close()


async def test_tool_rounds_are_bounded(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    fake_openai.responder = lambda body: (
        Reply(tool_calls=[ToolCallSpec("add", '{"a": 1, "b": 1}')])
        if body.get("tool_choice") != "none"
        else Reply(text="final")
    )
    replier = RecordingReplier()
    await make_service(database, llm, tools=Calculator(), max_tool_rounds=2).handle(
        incoming("loop", "e1"), replier
    )
    requests = fake_openai.chat_requests()
    # the last round still describes the tools (the history holds calls) but must answer in words
    assert [(bool(r.get("tools")), r.get("tool_choice")) for r in requests] == [
        (True, None),
        (True, None),
        (True, "none"),
    ]
    assert replier.finished == ["final"]
    await llm.close()


async def test_conversations_are_keyed_by_thread(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm)
    await service.handle(incoming("in A", "e1", thread="A"), RecordingReplier())
    await service.handle(incoming("in B", "e2", thread="B"), RecordingReplier())
    assert [c for _, c in texts(fake_openai.chat_requests()[1])] == ["You are a test assistant.", "in B"]
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 2
    await llm.close()
