"""The buttons under an answer on Slack, at the wire: the real bolt app and slack_sdk against the Slack fake,
the real openai SDK against the OpenAI fake. Clicks are signed ``block_actions`` forms posted to
``POST /slack/events`` as Slack posts them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.answers.buttons import RETRYING
from core.db.models import AnswerFeedback, Message, Reservation, UsageRecord
from core.domain.errors import BotError
from core.llm.tokens import TokenCounter
from tests.conftest import postgres_url, reset_postgres
from tests.fakes.openai_api import FakeOpenAI, Fault, Reply, Stall
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack, PostedMessage
from tests.fakes.slack_api import Fault as SlackFault
from tests.integration.test_slack_adapter import Slack, chat_messages, running_slack

MODEL = "gpt-4o-mini"


@pytest.fixture
async def slack(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Slack]:
    monkeypatch.setenv("THREADWISE_USER_DAILY_BUDGET_USD", "5")  # every turn holds its worst case
    # A stalled stream's one delta is shown at once (moderation shows a paragraph once a later delta comes)
    monkeypatch.setenv("THREADWISE_MODERATION", "false")
    async with running_slack(tmp_path, fake_openai) as running:
        yield running


def with_button(fake: FakeSlack, thread: str, action_id: str) -> PostedMessage:
    [message] = [m for m in fake.bot_messages(thread_ts=thread, controls=True) if action_id in m.buttons()]
    return message


async def click(
    slack: Slack, message: PostedMessage, action_id: str, user: str = "U0ALICE", *, idle: bool = True
) -> None:
    """Click; then wait for everything it started (``idle``), or only for the clicker to be told."""
    told = len(slack.fake.responses)
    delivery = await slack.sender.action(slack.fake.action_payload(message, action_id, user=user))
    assert delivery.status == 200
    if idle:
        await slack.background.idle()
    else:
        await slack.fake.wait_for(lambda: len(slack.fake.responses) > told)


def said(fake: FakeSlack) -> list[str]:
    """What the clickers were told privately (response_url)."""
    return [str(response.get("text")) for response in fake.responses]


async def rows(slack: Slack, model: type[Any]) -> list[Any]:
    async with slack.core.database.reader() as session:
        return list((await session.scalars(select(model))).all())


async def test_the_asker_rates_an_answer_and_a_second_click_changes_the_vote(slack: Slack) -> None:
    slack.openai.script(Reply(text="Paris."))
    event = await slack.mention("capital of France?")
    [answer] = slack.fake.bot_messages(thread_ts=event["ts"])
    assert set(answer.buttons()) == {"answer:up", "answer:down", "answer:retry"}  # no Stop once finished
    assert "Paris." in answer.blocks[0]["text"]["text"]  # the text is shown in the blocks

    await click(slack, answer, "answer:up")
    await click(slack, answer, "answer:down")

    [vote] = await rows(slack, AnswerFeedback)
    assert (vote.user_id, vote.vote, vote.model) == ("U0ALICE", -1, MODEL)
    assert said(slack.fake) == [
        "Thanks for the :thumbsup:, noted.",
        "Thanks for the :thumbsdown:, noted.",
    ]
    assert all(response["response_type"] == "ephemeral" for response in slack.fake.responses)


async def test_someone_else_is_refused_politely_and_nothing_changes(slack: Slack) -> None:
    slack.openai.script(Reply(text="Paris."))
    event = await slack.mention("capital of France?")
    [answer] = slack.fake.bot_messages(thread_ts=event["ts"])

    await click(slack, answer, "answer:up", user="U0BOB")
    await click(slack, answer, "answer:retry", user="U0BOB")

    assert (
        said(slack.fake)
        == [":warning: Only the person who asked this question, or an admin, can use these buttons."] * 2
    )
    assert await rows(slack, AnswerFeedback) == []
    assert len(slack.openai.chat_requests()) == 1  # no retry
    assert set(answer.buttons()) == {"answer:up", "answer:down", "answer:retry"}

    await click(slack, answer, "answer:up", user="U0ADMIN")  # a workspace admin may
    [vote] = await rows(slack, AnswerFeedback)
    assert (vote.user_id, vote.vote) == ("U0ADMIN", 1)


async def test_a_forged_click_is_refused_before_it_is_read(slack: Slack) -> None:
    slack.openai.script(Reply(text="Paris."))
    event = await slack.mention("capital of France?")
    [answer] = slack.fake.bot_messages(thread_ts=event["ts"])
    payload = slack.fake.action_payload(answer, "answer:up")

    forged = await slack.sender.action(payload, secret="not-the-signing-secret")
    stale = await slack.sender.action(payload, timestamp=1_000_000_000)
    await slack.background.idle()

    assert (forged.status, stale.status) == (401, 401)
    assert await rows(slack, AnswerFeedback) == []
    assert slack.fake.responses == []


async def test_a_replayed_click_is_harmless(slack: Slack) -> None:
    slack.openai.script(Reply(text="Paris."), Reply(text="Paris, France."))
    event = await slack.mention("capital of France?")
    [answer] = slack.fake.bot_messages(thread_ts=event["ts"])
    vote = slack.fake.action_payload(answer, "answer:up")
    retry = slack.fake.action_payload(answer, "answer:retry")
    for payload in (vote, vote, retry, retry):
        assert (await slack.sender.action(payload)).status == 200
        await slack.background.idle()

    assert [(v.user_id, v.vote) for v in await rows(slack, AnswerFeedback)] == [("U0ALICE", 1)]
    assert len(slack.openai.chat_requests()) == 2  # the question, and one retry
    assert said(slack.fake)[-1].startswith(":warning: Only the last answer")


async def stalled_reply(slack: Slack, text: str) -> tuple[dict[str, Any], PostedMessage]:
    """A mention whose answer streams ``text`` and then hangs; returns the event and its Stop button."""
    slack.openai.script(Stall(text=text))
    event = slack.fake.message_event(f"<@{BOT_USER_ID}> tell me everything", mention=True)
    assert (await slack.sender.event(slack.fake.envelope(event))).status == 200
    await slack.fake.wait_for(
        lambda: (
            any(text in m.current for m in slack.fake.bot_messages(thread_ts=event["ts"]))
            and any("answer:stop" in m.buttons() for m in slack.fake.bot_messages(controls=True))
        )
    )
    return event, with_button(slack.fake, event["ts"], "answer:stop")


async def test_stop_keeps_the_partial_answer_charges_it_and_settles_the_hold(slack: Slack) -> None:
    partial = "The long story begins in 1850, when"
    event, stop = await stalled_reply(slack, partial)
    late = slack.fake.action_payload(stop, "answer:stop")

    await click(slack, stop, "answer:stop", user="U0BOB", idle=False)  # not the asker: refused
    assert said(slack.fake)[-1].startswith(":warning: Only the person who asked")
    assert "answer:stop" in stop.buttons()  # still streaming
    await click(slack, stop, "answer:stop")

    [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
    assert partial in reply.current and "_Stopped by alice._" in reply.current
    assert set(reply.buttons()) == {"answer:up", "answer:down", "answer:retry"}  # Stop is gone
    [usage] = await rows(slack, UsageRecord)
    request = slack.openai.chat_requests()[0]
    counter = TokenCounter()
    assert usage.output_tokens == counter.count_text(MODEL, partial)
    assert usage.input_tokens > 0 and usage.cost_micros > 0
    assert await rows(slack, Reservation) == []  # the hold was settled
    stored = [m for m in await rows(slack, Message) if m.role == "assistant"]
    assert [m.content[0]["text"] for m in stored] == [partial]
    assert request["stream"] is True

    assert (await slack.sender.action(late)).status == 200  # a late or replayed Stop
    await slack.background.idle()
    assert said(slack.fake)[-1] == "That answer has already finished."


async def test_the_next_turn_sees_the_stopped_answer_as_it_was_kept(slack: Slack) -> None:
    partial = "Chapter one: it was"
    event, stop = await stalled_reply(slack, partial)
    await click(slack, stop, "answer:stop")
    slack.openai.script(Reply(text="Go on then."))
    await slack.message("and then?", thread_ts=event["ts"])
    history = chat_messages(slack.openai)
    assert {"role": "assistant", "content": partial} in history


async def test_retry_answers_again_and_replaces_the_answer_in_the_history(slack: Slack) -> None:
    slack.openai.script(Reply(text="Lyon."), Reply(text="Paris."), Reply(text="About 2 million."))
    event = await slack.mention("capital of France?")
    [first] = slack.fake.bot_messages(thread_ts=event["ts"])

    stale = slack.fake.action_payload(first, "answer:retry")  # the old answer's Retry, clicked later
    await click(slack, first, "answer:retry")

    retried = [m for m in slack.fake.bot_messages(thread_ts=event["ts"]) if m.ts != first.ts]
    assert [m.current for m in retried] == ["Paris."]
    assert first.buttons() == {} and "Retried by <@U0ALICE>" in str(first.blocks)
    again = chat_messages(slack.openai, 1)
    assert [m["content"] for m in again if m["role"] != "system"] == ["capital of France?"]

    await slack.message("how many people live there?", thread_ts=event["ts"])
    later = [m["content"] for m in chat_messages(slack.openai) if m["role"] != "system"]
    assert later == ["capital of France?", "Paris.", "how many people live there?"]

    assert (await slack.sender.action(stale)).status == 200  # no longer the last answer
    await slack.background.idle()
    assert said(slack.fake)[-1].startswith(":warning: Only the last answer of a conversation")
    assert len(slack.openai.chat_requests()) == 3


async def test_stop_beside_a_native_stream(slack: Slack) -> None:
    slack.fake.streaming.add(TEAM_ID)
    partial = "Streaming natively, and"
    event, stop = await stalled_reply(slack, partial)
    assert stop.is_control  # its own small message: a stream takes blocks only when it stops

    await click(slack, stop, "answer:stop")

    [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
    assert reply.stream == "stopped" and partial in reply.current and "Stopped by alice" in reply.current
    assert set(reply.buttons()) == {"answer:up", "answer:down", "answer:retry"}
    assert stop.deleted


async def test_feedback_per_model_in_the_admin_report(slack: Slack) -> None:
    slack.openai.script(Reply(text="One."), Reply(text="Two."), Reply(text="Three."))
    first = await slack.mention("one?")
    second = await slack.mention("two?", user="U0BOB")
    third = await slack.mention("three?")
    await click(slack, with_button(slack.fake, first["ts"], "answer:up"), "answer:up")
    await click(slack, with_button(slack.fake, second["ts"], "answer:down"), "answer:down", user="U0BOB")
    await click(slack, with_button(slack.fake, third["ts"], "answer:up"), "answer:up")
    slack.fake.responses.clear()

    await slack.command("/ai-admin", "report today by feedback", user="U0ADMIN")

    [answer] = slack.fake.responses
    assert answer["response_type"] == "ephemeral"
    assert "Feedback by model" in answer["text"] and "2 up, 1 down" in answer["text"]
    uploads = sorted(slack.fake.uploads.values(), key=lambda upload: upload.filename)
    assert [u.filename.rsplit(".", 1)[1] for u in uploads] == ["csv", "png"]
    assert (uploads[0].data or b"").decode().splitlines() == ["model,up,down", f"{MODEL},2,1"]
    assert uploads[1].data is not None and uploads[1].data.startswith(b"\x89PNG")


async def test_clicks_over_socket_mode(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with running_slack(tmp_path, fake_openai, socket=True) as slack:
        fake = slack.fake
        fake_openai.script(Reply(text="Over the socket."))
        event = fake.message_event(f"<@{BOT_USER_ID}> hello", mention=True)
        await fake.socket_send("events_api", fake.envelope(event))
        await slack.background.idle()
        [answer] = fake.bot_messages(thread_ts=event["ts"])

        ack = await fake.socket_send("interactive", fake.action_payload(answer, "answer:down"))
        assert ack["envelope_id"] == fake.socket_envelopes[-1]["envelope_id"]
        bobs = fake.action_payload(answer, "answer:up", user="U0BOB")
        refused = await fake.socket_send("interactive", bobs)
        assert refused["envelope_id"] == fake.socket_envelopes[-1]["envelope_id"]
        await slack.background.idle()

        [vote] = await rows(slack, AnswerFeedback)
        assert (vote.user_id, vote.vote) == ("U0ALICE", -1)
        assert said(fake) == [
            "Thanks for the :thumbsdown:, noted.",
            ":warning: Only the person who asked this question, or an admin, can use these buttons.",
        ]


async def test_malformed_clicks_are_acknowledged_and_ignored(slack: Slack) -> None:
    slack.openai.script(Reply(text="Paris."))
    event = await slack.mention("capital of France?")
    [answer] = slack.fake.bot_messages(thread_ts=event["ts"])
    good = slack.fake.action_payload(answer, "answer:up")
    no_actions = {**good, "actions": []}
    bad_value = {**good, "actions": [{**good["actions"][0], "value": "1; DROP TABLE"}]}
    unknown = {**good, "actions": [{**good["actions"][0], "action_id": "other:thing"}]}
    not_json = "payload=%7Bnot+json"
    for payload in (no_actions, bad_value):
        assert (await slack.sender.action(payload)).status == 200
    assert (await slack.sender.action(unknown)).status == 404  # no such button: bolt has no listener
    assert (await slack.sender.send(not_json, "application/x-www-form-urlencoded")).status == 400
    await slack.background.idle()
    assert await rows(slack, AnswerFeedback) == []
    assert slack.fake.responses == []


async def test_a_long_answer_carries_its_buttons_on_its_last_message(slack: Slack) -> None:
    paragraphs = "\n\n".join(f"Paragraph {i}. " + "word " * 60 for i in range(30))  # ~10,000 characters
    slack.openai.script(Reply(text=paragraphs, chunk_chars=400))
    event = await slack.mention("write a lot")

    replies = slack.fake.bot_messages(thread_ts=event["ts"])
    assert len(replies) >= 3
    assert [set(m.buttons()) for m in replies] == [set()] * (len(replies) - 1) + [
        {"answer:up", "answer:down", "answer:retry"}
    ]
    for message in replies:  # each message's blocks show its whole text, in sections Slack accepts
        texts = [b["text"]["text"] for b in message.blocks if b.get("type") == "section"]
        assert all(len(text) <= 3_000 for text in texts)
        assert not message.blocks or "".join(texts) == message.current


async def test_a_retry_that_fails_gives_the_old_answer_back_and_may_be_retried_again(slack: Slack) -> None:
    slack.openai.script(
        Reply(text="Lyon."), Fault(400, message="nope"), Reply(text="Paris."), Reply(text="About 2 million.")
    )
    event = await slack.mention("capital of France?")
    [first] = slack.fake.bot_messages(thread_ts=event["ts"])
    shown = first.buttons()

    await click(slack, first, "answer:retry")  # the model fails: the user is told in the thread
    failed = slack.fake.bot_messages(thread_ts=event["ts"])[-1]
    assert failed.current.startswith(":warning:") and failed.buttons() == {}
    assert first.buttons() == shown and first.current == "Lyon."  # the old answer, shown as it was

    await click(slack, first, "answer:retry")  # clicked again, on the buttons shown again
    assert slack.fake.bot_messages(thread_ts=event["ts"])[-1].current == "Paris."
    await slack.message("how many people live there?", thread_ts=event["ts"])
    assert [m["content"] for m in chat_messages(slack.openai) if m["role"] != "system"] == [
        "capital of France?",
        "Paris.",
        "how many people live there?",
    ]


def retry_clicks(fake: FakeSlack, answer: PostedMessage, users: tuple[str, ...]) -> list[dict[str, Any]]:
    """Retry clicks on ``answer`` by ``users``, each a distinct action (its own action_ts), as Slack sends
    two people's clicks, or a double-click, a few milliseconds apart."""
    payloads = [fake.action_payload(answer, "answer:retry", user=user) for user in users]
    for n, payload in enumerate(payloads):
        payload["actions"][0]["action_ts"] = f"{1_700_000_000 + n}.000{n}00"
    return payloads


async def test_two_retry_clicks_at_once_answer_the_question_once(slack: Slack) -> None:
    """The asker and an admin click Retry at the same moment: the first click wins; the other clicker is
    told privately that it is already being retried, and nothing else happens."""
    slack.openai.script(Reply(text="Lyon."), Reply(text="Paris."), Reply(text="Marseille."))
    event = await slack.mention("capital of France?")
    [first] = slack.fake.bot_messages(thread_ts=event["ts"])

    payloads = retry_clicks(slack.fake, first, ("U0ALICE", "U0ADMIN"))
    deliveries = await asyncio.gather(*(slack.sender.action(payload) for payload in payloads))
    assert [delivery.status for delivery in deliveries] == [200, 200]
    await slack.background.idle()

    assert len(slack.openai.chat_requests()) == 2  # the question, and one retry
    again = [m.current for m in slack.fake.bot_messages(thread_ts=event["ts"]) if m.ts != first.ts]
    assert again == ["Paris."]
    assert said(slack.fake) == [f":warning: {RETRYING}"]
    assert slack.fake.responses[0]["response_type"] == "ephemeral"
    assert str(first.blocks).count("Retried by") == 1

    await slack.message("really?", thread_ts=event["ts"])
    assert [m["content"] for m in chat_messages(slack.openai) if m["role"] != "system"] == [
        "capital of France?",
        "Paris.",
        "really?",
    ]


async def test_a_double_click_on_retry_answers_once(slack: Slack) -> None:
    slack.openai.script(Reply(text="Lyon."), Reply(text="Paris."), Reply(text="Marseille."))
    event = await slack.mention("capital of France?")
    [first] = slack.fake.bot_messages(thread_ts=event["ts"])

    payloads = retry_clicks(slack.fake, first, ("U0ALICE", "U0ALICE"))
    await asyncio.gather(*(slack.sender.action(payload) for payload in payloads))
    await slack.background.idle()

    assert len(slack.openai.chat_requests()) == 2
    again = [m.current for m in slack.fake.bot_messages(thread_ts=event["ts"]) if m.ts != first.ts]
    assert again == ["Paris."]
    assert said(slack.fake) == [f":warning: {RETRYING}"]


async def test_a_retry_cut_short_by_slack_being_unreachable_may_be_clicked_again(slack: Slack) -> None:
    """Slack drops the connection while the retried answer is being marked (every attempt of the SDK): the
    retry does not run. The old answer is still shown with its buttons, so it is back in the history and a
    second click retries it, instead of being told forever that a new answer will follow."""
    slack.openai.script(Reply(text="Lyon."), Reply(text="Paris."), Reply(text="About 2 million."))
    event = await slack.mention("capital of France?")
    [first] = slack.fake.bot_messages(thread_ts=event["ts"])
    slack.fake.fail("chat.update", SlackFault(status=503, disconnect=True), times=5)

    await click(slack, first, "answer:retry")
    assert len(slack.openai.chat_requests()) == 1  # nothing ran
    assert "answer:retry" in first.buttons() and first.current == "Lyon."
    assert said(slack.fake) == [f":warning: {BotError.default_message}"]  # told to try again

    slack.fake.heal("chat.update")  # Slack is reachable again
    await click(slack, first, "answer:retry")
    assert len(said(slack.fake)) == 1  # not told "already being retried"
    assert slack.fake.bot_messages(thread_ts=event["ts"])[-1].current == "Paris."
    await slack.message("how many people live there?", thread_ts=event["ts"])
    assert [m["content"] for m in chat_messages(slack.openai) if m["role"] != "system"] == [
        "capital of France?",
        "Paris.",
        "how many people live there?",
    ]


async def test_after_a_failed_retry_the_old_answer_is_in_the_history_again(slack: Slack) -> None:
    slack.openai.script(Reply(text="Lyon."), Fault(400, message="nope"), Reply(text="Yes."))
    event = await slack.mention("capital of France?")
    [first] = slack.fake.bot_messages(thread_ts=event["ts"])
    await click(slack, first, "answer:retry")
    await slack.message("are you sure?", thread_ts=event["ts"])
    assert [m["content"] for m in chat_messages(slack.openai) if m["role"] != "system"] == [
        "capital of France?",
        "Lyon.",
        "are you sure?",
    ]


async def test_stop_clicked_at_the_other_replica(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack HTTP mode behind a load balancer, two replicas on one PostgreSQL: the click lands on the
    replica that is not writing the answer, which stops at once all the same."""
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    await reset_postgres(url)
    monkeypatch.setenv("THREADWISE_MODERATION", "false")
    async with (
        running_slack(tmp_path / "a", fake_openai, database_url=url) as writing,
        running_slack(tmp_path / "b", fake_openai, database_url=url) as other,
    ):
        partial = "Replica A writes this"
        event, stop = await stalled_reply(writing, partial)

        delivery = await other.sender.action(writing.fake.action_payload(stop, "answer:stop"))
        assert delivery.status == 200
        await other.background.idle()
        await writing.background.idle()

        [reply] = writing.fake.bot_messages(thread_ts=event["ts"])
        assert partial in reply.current and "_Stopped by alice._" in reply.current
        assert writing.fake.responses == []  # nothing to tell the clicker: it stopped
        [usage] = await rows(writing, UsageRecord)
        assert usage.output_tokens == TokenCounter().count_text(MODEL, partial)


async def test_two_retry_clicks_at_once_on_two_replicas_answer_the_question_once(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack HTTP mode behind a load balancer, two replicas on one PostgreSQL: two Retry clicks on the same
    answer land at the same moment, one on each replica. One replica answers again; the other clicker is
    told it is already being retried."""
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    await reset_postgres(url)
    monkeypatch.setenv("THREADWISE_MODERATION", "false")
    async with (
        running_slack(tmp_path / "a", fake_openai, database_url=url) as one,
        running_slack(tmp_path / "b", fake_openai, database_url=url) as other,
    ):
        fake_openai.script(Reply(text="Lyon."), Reply(text="Paris."), Reply(text="Marseille."))
        event = await one.mention("capital of France?")
        [first] = one.fake.bot_messages(thread_ts=event["ts"])

        mine, theirs = retry_clicks(one.fake, first, ("U0ALICE", "U0ADMIN"))
        deliveries = await asyncio.gather(one.sender.action(mine), other.sender.action(theirs))
        assert [delivery.status for delivery in deliveries] == [200, 200]
        await asyncio.gather(one.background.idle(), other.background.idle())

        assert len(fake_openai.chat_requests()) == 2  # the question, and one retry
        answered = [
            m.current
            for replica in (one, other)
            for m in replica.fake.bot_messages(thread_ts=event["ts"])
            if m.ts != first.ts
        ]
        assert answered == ["Paris."]
        assert said(one.fake) == [f":warning: {RETRYING}"]  # both clicks' response_urls are on its fake


async def test_a_native_stream_that_times_out_leaves_no_stop_button_and_no_buttons(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """THREADWISE_TURN_TIMEOUT ends a natively streamed answer whose model hangs: the reply keeps what was
    streamed with the error under it, the Stop button's own message is deleted, and no button is left."""
    monkeypatch.setenv("THREADWISE_MODERATION", "false")
    monkeypatch.setenv("THREADWISE_TURN_TIMEOUT", "2")
    async with running_slack(tmp_path, fake_openai) as slack:
        slack.fake.streaming.add(TEAM_ID)
        event, stop = await stalled_reply(slack, "Halfway there, and")
        assert stop.is_control
        await slack.background.idle()

        assert stop.deleted
        [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
        assert reply.stream == "stopped"
        assert reply.current.startswith("Halfway there, and") and ":warning:" in reply.current
        assert reply.buttons() == {}
        assert slack.fake.bot_messages(thread_ts=event["ts"], controls=True) == [reply]


async def test_shutdown_past_the_drain_mid_native_stream_leaves_no_stop_button(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM's drain (THREADWISE_DRAIN_SECONDS) runs out while an answer streams natively: the reply says it
    was interrupted, the Stop button's own message is deleted and no button is left."""
    monkeypatch.setenv("THREADWISE_MODERATION", "false")
    monkeypatch.setenv("THREADWISE_DRAIN_SECONDS", "0.5")
    async with running_slack(tmp_path, fake_openai) as slack:
        slack.fake.streaming.add(TEAM_ID)
        event, stop = await stalled_reply(slack, "Once upon a time")
        fake = slack.fake
    assert stop.deleted
    [reply] = fake.bot_messages(thread_ts=event["ts"])
    assert reply.stream == "stopped" and "interrupted" in reply.current
    assert reply.buttons() == {}
