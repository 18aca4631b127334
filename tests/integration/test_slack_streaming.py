"""Native streaming on Slack (chat.startStream / appendStream / stopStream) against the Slack fake: used where
the workspace allows it (channel mentions stream to the asker), falling back to a placeholder and edits when
Slack refuses, the decision remembered; only moderated text is appended; tools show as task steps; crash
recovery stops a stream a dead replica left open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.replier import PLACEHOLDER, SlackResolver
from core.domain.types import ConversationKey
from tests.fakes.openai_api import FakeOpenAI, Reply, ToolCallSpec
from tests.fakes.slack_api import BOT_TOKEN, BOT_USER_ID, TEAM_ID, FakeSlack, PostedMessage
from tests.integration.test_slack_adapter import Slack, running_slack

ANSWER = "Paris is the **capital** of France.\n\nIt has been since 987, give or take."


@pytest.fixture
async def slack(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Slack]:
    async with running_slack(tmp_path, fake_openai) as running:
        running.fake.streaming.add(TEAM_ID)
        yield running


def stream_methods(fake: FakeSlack, start: int = 0) -> list[str]:
    """The chat calls of replies, without the Stop button's own message beside a native stream."""
    stops = {m.ts for m in fake.messages if m.text == "Answering…"}
    return [
        call.method
        for call in fake.calls[start:]
        if call.method.startswith("chat.")
        and not (call.method == "chat.postMessage" and call.args.get("text") == "Answering…")
        and not (call.method == "chat.delete" and call.args.get("ts") in stops)
    ]


async def test_a_channel_mention_streams_natively_to_the_asker(slack: Slack) -> None:
    fake = slack.fake
    slack.openai.script(Reply(text=ANSWER, chunk_chars=4, chunk_delay=0.12))  # ~2 s of streaming
    event = await slack.mention("capital of France?")

    [reply] = fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    assert reply.stream == "stopped"
    assert reply.current == ANSWER  # Markdown as the model wrote it: Slack renders it
    assert reply.recipient == ("U0ALICE", TEAM_ID)  # required when streaming in a channel
    methods = stream_methods(fake)
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    assert set(methods[1:-1]) == {"chat.appendStream"} and len(methods) >= 4  # streamed in several appends
    assert "chat.postMessage" not in methods and "chat.update" not in methods
    [start] = fake.calls_of("chat.startStream")
    assert start.args["thread_ts"] == event["ts"] and start.token == BOT_TOKEN


async def test_a_direct_message_streams_without_a_recipient(slack: Slack) -> None:
    slack.openai.script(Reply(text="Hi there"))
    event = await slack.message("hello", channel="D0ALICE", channel_type="im")
    [reply] = slack.fake.bot_messages("D0ALICE", thread_ts=event["ts"])
    assert reply.current == "Hi there" and reply.stream == "stopped" and reply.recipient is None
    [start] = slack.fake.calls_of("chat.startStream")
    assert "recipient_user_id" not in start.args


async def test_refused_streaming_falls_back_to_edits_and_is_not_tried_again(slack: Slack) -> None:
    fake = slack.fake
    fake.streaming.clear()
    fake.stream_refusal = "not_allowed"
    slack.openai.script(Reply(text=ANSWER), Reply(text="Second answer"))
    first = await slack.mention("capital of France?")

    [tried] = [call for call in fake.calls if call.method == "chat.startStream"]
    assert tried.status == 400  # refused: not_allowed
    [reply] = fake.bot_messages("C0GENERAL", thread_ts=first["ts"])
    assert reply.stream is None and reply.text == PLACEHOLDER
    assert (
        reply.current == "Paris is the *capital* of France.\n\nIt has been since 987, give or take."
    )  # mrkdwn

    before = len(fake.calls)
    await slack.message("and Spain?", thread_ts=first["ts"])
    assert stream_methods(fake, before) == ["chat.postMessage", "chat.update"]  # the workspace is known


async def test_only_text_that_passed_moderation_is_appended(slack: Slack) -> None:
    fake = slack.fake
    slack.openai.moderation_flags = {"forbidden recipe": {"illicit/violent": 0.97}}
    slack.openai.script(
        Reply(text="Sure.\n\nHere is the forbidden recipe you asked for, step by step.", chunk_chars=3)
    )
    event = await slack.mention("tell me")
    [reply] = fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    assert all("forbidden" not in text for text in reply.appends)
    assert "forbidden" not in reply.current
    assert reply.stream == "stopped" and ":warning:" in reply.current


async def test_a_tool_round_shows_as_a_task_step_in_the_stream(slack: Slack) -> None:
    slack.openai.script(
        Reply(tool_calls=[ToolCallSpec("calculator", '{"expression": "6*7"}')]),
        Reply(text="It is 42."),
    )
    event = await slack.mention("what is 6*7?")
    [reply] = slack.fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    assert reply.current == "It is 42." and reply.stream == "stopped"
    steps = [chunk for chunk in reply.chunks if chunk["type"] == "task_update"]
    assert [step["status"] for step in steps] == ["in_progress", "complete"]
    assert steps[0]["title"] == "Using calculator…" and steps[0]["id"] == steps[1]["id"]


async def test_a_long_answer_streams_into_consecutive_messages(slack: Slack) -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 196 for n in range(6)]  # ~6,000 characters
    answer = "\n\n".join(p.strip() for p in paragraphs)
    slack.openai.script(Reply(text=answer, chunk_chars=500))
    event = await slack.mention("write a lot")
    replies = slack.fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    assert len(replies) == 2 and all(reply.stream == "stopped" for reply in replies)
    assert all(len(reply.current) <= 4_000 for reply in replies)
    assert "\n\n".join(reply.current for reply in replies) == answer


async def test_a_stream_slack_ended_midway_is_finished_by_editing_it(slack: Slack) -> None:
    fake = slack.fake
    answer = "First paragraph.\n\nSecond paragraph, which arrives after Slack ended the stream."
    slack.openai.script(Reply(text=answer, chunk_chars=4, chunk_delay=0.1))
    event = fake.message_event(f"<@{BOT_USER_ID}> go", mention=True)
    assert (await slack.sender.event(fake.envelope(event))).status == 200
    await fake.wait_for(lambda: any(m.appends for m in fake.bot_messages()))
    [reply] = fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    reply.stream = "stopped"  # as Slack does with a stream it considers abandoned
    await slack.background.idle()
    assert (
        reply.current == "First paragraph.\n\nSecond paragraph, which arrives after Slack ended the stream."
    )
    assert reply.edits  # finished with chat.update
    assert not [call for call in fake.calls if call.method == "chat.stopStream" and call.status == 200]


# ---------------------------------------------------------------------------------------------- recovery


async def _open_stream(fake: FakeSlack, client: AsyncWebClient, text: str) -> PostedMessage:
    started = await client.chat_startStream(
        channel="C0GENERAL",
        thread_ts="1700000000.000100",
        markdown_text=text,
        recipient_user_id="U0ALICE",
        recipient_team_id=TEAM_ID,
    )
    [message] = [m for m in fake.messages if m.ts == started["ts"]]
    return message


async def test_recovery_stops_a_stream_left_open_with_the_notice_appended() -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.streaming.add(TEAM_ID)
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url, session=session)
        key = ConversationKey("slack", TEAM_ID, "C0GENERAL", "1700000000.000100")
        resolver = SlackResolver(client)

        left_open = await _open_stream(fake, client, "Half an ans")
        where = {"channel": "C0GENERAL", "ts": left_open.ts, "stream": "native"}
        await resolver.resolve(key, where, "Your last message was interrupted. Please ask again.")
        assert left_open.stream == "stopped" and left_open.edits == []
        assert (
            left_open.current
            == "Half an ans\n\n:warning: Your last message was interrupted. Please ask again."
        )

        stopped = await _open_stream(fake, client, "A whole answer")
        await client.chat_stopStream(channel="C0GENERAL", ts=stopped.ts)
        where = {"channel": "C0GENERAL", "ts": stopped.ts, "stream": "native"}
        await resolver.resolve(key, where, "interrupted")
        assert stopped.current == ":warning: interrupted"  # no longer streaming: edited like any message


async def test_the_reply_s_place_is_recorded_as_a_stream(slack: Slack) -> None:
    from sqlalchemy import select

    from core.db.models import ProcessedEvent

    slack.openai.script(Reply(text="Recorded"))
    event = await slack.mention("where is it?")
    [reply] = slack.fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    async with slack.core.database.reader() as session:
        rows = (await session.execute(select(ProcessedEvent.reply))).scalars().all()
    [stop] = [m for m in slack.fake.messages if m.text == "Answering…"]  # the Stop button, deleted since
    assert {"channel": "C0GENERAL", "ts": reply.ts, "stream": "native", "stop": stop.ts} in rows
    assert BOT_USER_ID  # the fake's bot posted it
