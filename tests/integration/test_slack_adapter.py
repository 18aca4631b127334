"""The Slack adapter, composed as `threadwise serve` composes it (settings -> open_core -> open_slack on
the shared HttpServer), over HTTP (signed Events API and slash command requests) and over Socket Mode, with
the real slack-bolt AsyncApp and slack_sdk talking to the Slack fake and the real openai SDK to the OpenAI
fake."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.bootstrap import Core, open_core
from bots.http import HttpServer
from bots.inflight import InFlight
from bots.slack.app import open_slack
from bots.slack.config import SlackOptions
from bots.slack.replier import SlackReplier
from core.domain.errors import INTERRUPTED_MESSAGE
from core.settings import SettingsError, load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply, Silent, Stall, png_bytes
from tests.fakes.openai_api import Fault as OpenAIFault
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    EventSender,
    FakeSlack,
    Fault,
)


@dataclass
class Slack:
    fake: FakeSlack
    openai: FakeOpenAI
    core: Core
    background: InFlight
    sender: EventSender

    async def mention(self, text: str, **options: Any) -> dict[str, Any]:
        """A mention in a channel as Slack delivers it (app_mention), answered; returns the event."""
        event = self.fake.message_event(f"<@{BOT_USER_ID}> {text}", mention=True, **options)
        delivery = await self.sender.event(self.fake.envelope(event))
        assert delivery.status == 200
        await self.background.idle()
        return event

    async def message(self, text: str, **options: Any) -> dict[str, Any]:
        event = self.fake.message_event(text, **options)
        delivery = await self.sender.event(self.fake.envelope(event))
        assert delivery.status == 200
        await self.background.idle()
        return event

    async def command(self, name: str, text: str, **options: Any) -> dict[str, str]:
        fields = self.fake.command_payload(name, text, **options)
        delivery = await self.sender.command(fields)
        assert delivery.status == 200, delivery.body
        await self.background.idle()
        return fields


def settings_for(
    tmp_path: Path,
    openai: FakeOpenAI,
    fake: FakeSlack,
    *,
    socket: bool = False,
    bot_token: str = BOT_TOKEN,
    database_url: str | None = None,
    **threadwise: str,
) -> Any:
    """Settings as `threadwise serve` reads them, from environment-like string values."""
    return load_settings(
        None,
        openai={"api_key": "test-key", "base_url": openai.base_url},
        slack={
            "bot_token": bot_token,
            "app_token": APP_TOKEN if socket else "",
            "signing_secret": SIGNING_SECRET,
            "api_url": fake.api_url,
        },
        service={"database_url": database_url or f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}", "port": "0"},
        threadwise={"openai_max_retries": "0", **threadwise},
    )


@contextlib.asynccontextmanager
async def running_slack(
    tmp_path: Path,
    openai: FakeOpenAI,
    *,
    socket: bool = False,
    database_url: str | None = None,
    **threadwise: str,
) -> AsyncIterator[Slack]:
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        fake.add_user("U0BOB", "bob")
        fake.add_user("U0ADMIN", "ada", admin=True)
        settings = settings_for(
            tmp_path, openai, fake, socket=socket, database_url=database_url, **threadwise
        )
        async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
            if core.buttons is not None:  # as `serve` does: Stop clicks on other replicas reach this one
                await stack.enter_async_context(core.buttons.listening())
            http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
            background = InFlight("Slack")
            await stack.enter_async_context(
                open_slack(core.chat, SlackOptions.from_settings(settings), http, background=background)
            )
            await stack.enter_async_context(http)
            http.ready = True
            session = await stack.enter_async_context(aiohttp.ClientSession())
            sender = EventSender(f"http://127.0.0.1:{http.port}/slack/events", session)
            yield Slack(fake, openai, core, background, sender)


@pytest.fixture
async def slack(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Slack]:
    async with running_slack(tmp_path, fake_openai) as running:
        yield running


def chat_messages(openai: FakeOpenAI, index: int = -1) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = openai.chat_requests()[index]["messages"]
    return messages


# ---------------------------------------------------------------------------------------------- conversations


async def test_mention_is_acked_at_once_and_answered_in_its_thread_streaming(slack: Slack) -> None:
    answer = "Paris is the **capital** of France. " * 4
    slack.openai.script(Reply(text=answer, chunk_chars=4, chunk_delay=0.04))  # ~1.4 s of streaming
    event = slack.fake.message_event(f"<@{BOT_USER_ID}> What is the capital of France?", mention=True)
    started = time.perf_counter()
    delivery = await slack.sender.event(slack.fake.envelope(event))
    assert delivery.status == 200
    assert slack.fake.calls_of("chat.update") == []  # acked before the answer, not after it
    await slack.background.idle()
    elapsed = time.perf_counter() - started

    [reply] = slack.fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    assert reply.text == ":hourglass_flowing_sand: Thinking…"  # the placeholder comes first
    assert reply.current == answer.replace("**capital**", "*capital*").strip()
    assert 1 <= len(reply.edits) <= elapsed + 2  # streamed, at most about one edit a second
    assert chat_messages(slack.openai)[-1] == {"role": "user", "content": "What is the capital of France?"}


async def test_follow_up_in_the_thread_continues_without_a_mention(slack: Slack) -> None:
    slack.openai.script(Reply(text="Hello Ada!"), Reply(text="Your name is Ada."))
    first = await slack.mention("My name is Ada.")
    await slack.message("What is my name?", thread_ts=first["ts"])

    replies = slack.fake.bot_messages("C0GENERAL", thread_ts=first["ts"])
    assert [m.current for m in replies] == ["Hello Ada!", "Your name is Ada."]
    history = [(m["role"], m["content"]) for m in chat_messages(slack.openai)[1:]]
    assert history == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada!"),
        ("user", "What is my name?"),
    ]


async def test_only_people_in_conversations_are_answered(slack: Slack) -> None:
    slack.openai.script(Reply(text="one"), Reply(text="two"))
    first = await slack.mention("start")
    fake = slack.fake
    await slack.message("just chatting in the channel")  # top level, no mention
    await slack.message("a thread the bot is not in", thread_ts=fake.next_ts())
    bot_echo = fake.message_event("from another bot", thread_ts=first["ts"])
    bot_echo |= {"subtype": "bot_message", "bot_id": "B0OTHER"}
    own = fake.message_event("my own reply", user=BOT_USER_ID, thread_ts=first["ts"])
    edited = fake.message_event("", thread_ts=first["ts"]) | {
        "subtype": "message_changed",
        "message": {"type": "message", "user": "U0ALICE", "text": "edited", "ts": first["ts"]},
    }
    joined = fake.message_event("<@U0BOB> has joined the channel", user="U0BOB") | {"subtype": "channel_join"}
    for noise in (bot_echo, own, edited, joined):
        assert (await slack.sender.event(fake.envelope(noise))).status == 200  # a listener, not a 404
    await slack.background.idle()
    await slack.message("and this continues", thread_ts=first["ts"])

    assert [m.current for m in fake.bot_messages()] == ["one", "two"]
    assert len(slack.openai.chat_requests()) == 2


async def test_direct_message_is_a_conversation_in_its_thread(slack: Slack) -> None:
    slack.openai.script(Reply(text="Hi in DM"), Reply(text="Still here"))
    dm = await slack.message("hello there", channel="D0ALICE", channel_type="im")
    await slack.message("more", channel="D0ALICE", channel_type="im", thread_ts=dm["ts"])

    replies = slack.fake.bot_messages("D0ALICE", thread_ts=dm["ts"])
    assert [m.current for m in replies] == ["Hi in DM", "Still here"]
    assert len(chat_messages(slack.openai)) == 4  # system, hello, answer, more


async def test_retries_replays_and_the_message_twin_get_one_answer(slack: Slack) -> None:
    slack.openai.script(Reply(text="only once"))
    fake = slack.fake
    mention = fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True)
    twin = fake.message_event(f"<@{BOT_USER_ID}> hi", ts=mention["ts"])  # message.channels copy
    envelope = fake.envelope(mention)
    assert (await slack.sender.event(envelope)).status == 200
    assert (await slack.sender.event(fake.envelope(twin))).status == 200
    assert (await slack.sender.event(envelope, retry_num=1)).status == 200
    await slack.background.idle()
    assert (await slack.sender.event(envelope)).status == 200  # replayed later, after the answer
    await slack.background.idle()

    [reply] = fake.bot_messages()
    assert reply.current == "only once"
    assert len(slack.openai.chat_requests()) == 1


async def test_forged_and_stale_requests_are_refused_and_nothing_is_posted(slack: Slack) -> None:
    fake = slack.fake
    envelope = fake.envelope(fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True))
    forged = await slack.sender.event(envelope, secret="not-the-signing-secret")
    stale = await slack.sender.event(envelope, timestamp=int(time.time()) - 6 * 60)
    command = await slack.sender.command(fake.command_payload("/ai", "ask hi"), secret="wrong")
    await slack.background.idle()

    assert (forged.status, stale.status, command.status) == (401, 401, 401)
    assert fake.messages == [] and fake.responses == []
    assert [call.method for call in fake.calls] == ["auth.test"]  # the token check at start-up only
    assert slack.openai.chat_requests() == []


async def test_a_turn_costs_two_slack_calls_once_the_user_is_known(slack: Slack) -> None:
    slack.openai.script(Reply(text="one"), Reply(text="two"))
    first = await slack.mention("hi")
    assert slack.fake.methods() == ["auth.test", "auth.test", "users.info", "chat.postMessage", "chat.update"]
    before = len(slack.fake.calls)
    await slack.message("again", thread_ts=first["ts"])
    assert [call.method for call in slack.fake.calls[before:]] == ["chat.postMessage", "chat.update"]


async def test_a_wrong_bot_token_stops_start_up_with_a_clear_message(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake:
        settings = settings_for(tmp_path, fake_openai, fake, bot_token="xoxb-revoked")
        async with open_core(settings) as core:
            http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
            with pytest.raises(SettingsError, match=r"SLACK_BOT_TOKEN.*invalid_auth"):
                async with open_slack(core.chat, SlackOptions.from_settings(settings), http):
                    pass


# ---------------------------------------------------------------------------------------------- replies


async def test_a_long_answer_is_split_at_a_paragraph_boundary(slack: Slack) -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 196 for n in range(6)]  # ~6,000 characters
    answer = "\n\n".join(p.strip() for p in paragraphs)
    assert 5_900 < len(answer) < 6_100
    slack.openai.script(Reply(text=answer, chunk_chars=500))
    event = await slack.mention("write a lot")

    parts = slack.fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
    assert len(parts) == 2
    assert all(len(part.current) <= 3_900 for part in parts)
    assert parts[0].current.endswith("word") and parts[1].current.startswith("Paragraph ")
    assert parts[0].current + "\n\n" + parts[1].current == answer


async def test_a_rate_limited_edit_is_retried_after_retry_after(slack: Slack) -> None:
    slack.fake.fail("chat.update", Fault(status=429, retry_after=1))
    slack.openai.script(Reply(text="worth the wait"))
    event = await slack.mention("hi")

    [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
    assert reply.current == "worth the wait"
    updates = [call.status for call in slack.fake.calls if call.method == "chat.update"]
    assert updates == [429, 200]


async def test_markdown_is_shown_as_slack_mrkdwn(slack: Slack) -> None:
    answer = (
        "## Steps\n\n1. Run **this**:\n\n```python\nprint(a < b and c)\n```\n\n"
        "See [docs](https://x.org/a?b=1&c=2)."
    )
    slack.openai.script(Reply(text=answer))
    event = await slack.mention("how?")
    [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
    assert reply.current == (
        "*Steps*\n\n1. Run *this*:\n\n```\nprint(a &lt; b and c)\n```\n\nSee <https://x.org/a?b=1&amp;c=2|docs>."
    )


async def test_a_core_error_is_a_short_friendly_message(slack: Slack) -> None:
    slack.openai.script(OpenAIFault(500), OpenAIFault(500), OpenAIFault(500))
    event = await slack.mention("hi")
    [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
    assert reply.current.startswith(":warning: ")
    assert "Traceback" not in reply.current and len(reply.current) < 200


# ---------------------------------------------------------------------------------------------- deadlines

ENDS_WITHIN = 60.0  # an outer bound: the turn must end by itself (not a timing assertion)
THINKING = ":hourglass_flowing_sand: Thinking…"


async def test_a_hung_model_call_replaces_the_placeholder_with_a_clear_message(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(
        tmp_path, fake_openai, first_token_timeout="0.5", openai_max_retries="2"
    ) as slack:
        slack.openai.script(Silent(), Reply(text="never asked for"))
        event = await asyncio.wait_for(slack.mention("are you there?"), ENDS_WITHIN)
        [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
        assert reply.text == THINKING
        assert reply.current == ":warning: The model did not answer within 0.5 s. Please try again."
        assert len(slack.openai.chat_requests()) == 1


async def test_a_stream_that_stalls_ends_with_a_clear_message(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai, first_token_timeout="0.5") as slack:
        slack.openai.script(Stall("Paris is the"))  # not shown: output moderation had not cleared it yet
        event = await asyncio.wait_for(slack.mention("capital of France?"), ENDS_WITHIN)
        [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
        assert reply.text == THINKING
        assert reply.current == (
            ":warning: The model stopped answering (nothing came for 0.5 s). Please try again."
        )


async def test_the_turn_time_limit_cuts_a_slow_answer_with_a_visible_note(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai, turn_timeout="1", first_token_timeout="20") as slack:
        story = ("word " * 10 + "\n\n") * 40  # paragraphs, so output moderation clears them as they come
        slack.openai.script(Reply(text=story, chunk_chars=5, chunk_delay=0.02))  # ~6 s of streaming
        event = await asyncio.wait_for(slack.mention("a long story, please"), ENDS_WITHIN)
        [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
        text, _, note = reply.current.rpartition("\n\n")
        assert text.startswith("word word") and len(text) < len(story.strip())
        assert note == (
            ":warning: This answer took longer than the 1 s time limit and was cut off. Please try again."
        )


async def test_a_turn_cancelled_at_shutdown_replaces_the_placeholder(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as slack:
        slack.openai.script(Silent())
        event = slack.fake.message_event(f"<@{BOT_USER_ID}> hello", mention=True)
        assert (await slack.sender.event(slack.fake.envelope(event))).status == 200

        for _ in range(int(ENDS_WITHIN / 0.02)):  # until the placeholder is up and the model was asked
            if slack.fake.bot_messages(thread_ts=event["ts"]) and slack.openai.chat_requests():
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(
            slack.background.close(grace=0), ENDS_WITHIN
        )  # shutdown: the turn is cancelled
        [reply] = slack.fake.bot_messages(thread_ts=event["ts"])
        assert reply.text == THINKING and reply.current == f":warning: {INTERRUPTED_MESSAGE}"


# ---------------------------------------------------------------------------------------------- files


async def test_an_uploaded_image_reaches_the_model_and_unreadable_files_are_named(slack: Slack) -> None:
    fake = slack.fake
    png = png_bytes(8, 8)
    files = [
        fake.add_file("chart.png", png, "image/png", "png"),
        fake.add_file("notes.py", b"print('hello')\n", "text/plain", "python"),
        fake.add_file("report.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf", "pdf"),
    ]
    slack.openai.script(Reply(text="A small blue square."))
    # a mention with files arrives as a file_share message only, without an app_mention (bolt-python#925)
    event = await slack.message(f"<@{BOT_USER_ID}> what is in this picture?", files=files)

    user = chat_messages(slack.openai)[-1]
    parts = user["content"]
    assert parts[0] == {"type": "text", "text": "what is in this picture?"}
    image = next(part for part in parts if part["type"] == "image_url")
    assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    assert any("print('hello')" in part.get("text", "") for part in parts)
    assert all(authorized for _, authorized in fake.downloads)  # downloaded with the bot token
    notice, answer = fake.bot_messages(thread_ts=event["ts"])
    assert "report.pdf" in notice.current and "chart.png" not in notice.current
    assert answer.current == "A small blue square."


async def test_the_bot_token_goes_only_to_slack_and_oversized_files_are_not_downloaded(slack: Slack) -> None:
    fake = slack.fake
    elsewhere = fake.add_file("cat.png", png_bytes(4, 4), "image/png", "png")
    elsewhere["url_private_download"] = "https://attacker.example/cat.png"
    elsewhere["url_private"] = "https://attacker.example/cat.png"
    huge = fake.add_file("huge.png", png_bytes(4, 4), "image/png", "png") | {"size": 50 * 1024 * 1024}
    slack.openai.script(Reply(text="No pictures, sorry."))
    event = await slack.mention("look", files=[elsewhere, huge])

    assert fake.downloads == []
    notice, answer = fake.bot_messages(thread_ts=event["ts"])
    assert "cat.png" in notice.current and "huge.png" in notice.current and "50.0 MB" in notice.current
    assert chat_messages(slack.openai)[-1]["content"] == "look"
    assert answer.current == "No pictures, sorry."


# ------------------------------------------------------------------------------------------- slash commands


async def test_ai_help_and_usage_are_ephemeral(slack: Slack) -> None:
    await slack.command("/ai", "")
    await slack.command("/ai", "help")
    await slack.command("/ai", "usage")
    help_text, again, usage = slack.fake.responses
    assert help_text["response_type"] == "ephemeral" and "/ai ask" in help_text["text"]
    assert again == help_text
    assert usage["response_type"] == "ephemeral" and "usage" in usage["text"].lower()
    assert slack.fake.bot_messages() == []  # nothing public


async def test_ai_ask_posts_the_question_and_answers_in_its_thread(slack: Slack) -> None:
    slack.openai.script(Reply(text="42"), Reply(text="Hello!"))
    await slack.command("/ai", "ask what is six times seven? &lt;quick&gt;")
    await slack.command("/ai", "chat hello")
    question, answer, chat_question, chat_answer = slack.fake.bot_messages("C0GENERAL")
    assert question.current == "<@U0ALICE> asked: what is six times seven? &lt;quick&gt;"
    assert question.thread_ts is None
    assert chat_messages(slack.openai, 0)[-1]["content"] == "what is six times seven? <quick>"
    assert answer.thread_ts == question.ts and answer.current == "42"
    assert chat_question.current == "<@U0ALICE> asked: hello" and chat_answer.thread_ts == chat_question.ts
    assert chat_answer.current == "Hello!"
    assert slack.fake.responses == []

    slack.openai.script(Reply(text="follow-up answer"))
    await slack.message("and plus one?", thread_ts=question.ts)
    assert slack.fake.bot_messages(thread_ts=question.ts)[-1].current == "follow-up answer"


async def test_ai_without_a_subcommand_asks_and_empty_prompts_get_usage(slack: Slack) -> None:
    slack.openai.script(Reply(text="Blue."))
    await slack.command("/ai", "what colour is the sky?")
    await slack.command("/ai", "ask")
    question, answer = slack.fake.bot_messages()
    assert question.current.endswith("asked: what colour is the sky?") and answer.current == "Blue."
    [usage] = slack.fake.responses
    assert usage["response_type"] == "ephemeral" and "Usage" in usage["text"]


async def test_ai_model_and_reset_apply_to_the_callers_last_thread(slack: Slack) -> None:
    slack.openai.script(Reply(text="first"), Reply(text="second"))
    thread = await slack.mention("remember this")
    await slack.command("/ai", "model")
    await slack.command("/ai", "model gpt-4o-mini")
    await slack.command("/ai", "model no-such-model")
    await slack.command("/ai", "reset")
    await slack.message("fresh start?", thread_ts=thread["ts"])

    shown, refused, reset = slack.fake.responses
    assert "gpt-4o-mini" in shown["text"] and shown["response_type"] == "ephemeral"
    assert refused["text"].startswith(":warning:") and "no-such-model" in refused["text"]
    assert "no longer see" in reset["text"]
    changed = [m for m in slack.fake.bot_messages(thread_ts=thread["ts"]) if "now uses" in m.current]
    assert len(changed) == 1  # the model change is announced in the thread it concerns
    assert [m["role"] for m in chat_messages(slack.openai)] == ["system", "user"]  # history forgotten


async def test_ai_forget_asks_for_confirmation_then_erases(slack: Slack) -> None:
    slack.openai.script(Reply(text="noted"))
    await slack.mention("my secret plan")
    await slack.command("/ai", "forget")
    await slack.command("/ai", "forget confirm")
    await slack.command("/ai", "forget")
    asked, erased, empty = slack.fake.responses
    assert all(r["response_type"] == "ephemeral" for r in (asked, erased, empty))
    assert "2 messages in 1 conversations" in asked["text"] and "/ai forget confirm" in asked["text"]
    assert erased["text"].startswith("Erased 2 messages")
    assert empty["text"] == "I hold nothing of yours."


async def test_ai_image_uploads_the_picture_into_a_thread(slack: Slack) -> None:
    await slack.command("/ai", "image a lighthouse at dusk")
    [question] = slack.fake.bot_messages()
    assert question.current == "<@U0ALICE> asked for an image: a lighthouse at dusk"
    [upload] = slack.fake.uploads.values()
    assert upload.channel == "C0GENERAL" and upload.thread_ts == question.ts
    assert upload.data is not None and upload.data.startswith(b"\x89PNG")
    methods = slack.fake.methods()
    assert methods.index("files.getUploadURLExternal") < methods.index("files.completeUploadExternal")


async def test_ai_ask_where_the_bot_cannot_post_says_how_to_fix_it(slack: Slack) -> None:
    slack.fake.unreachable_channels.add("C0PRIVATE")
    await slack.command("/ai", "ask hi", channel="C0PRIVATE")
    [answer] = slack.fake.responses
    assert answer["response_type"] == "ephemeral" and "/invite" in answer["text"]
    assert slack.openai.chat_requests() == []


# ---------------------------------------------------------------------------------------------- admin


async def test_admin_report_uploads_chart_and_csv_for_a_workspace_admin(slack: Slack) -> None:
    slack.openai.script(Reply(text="spent something"))
    await slack.mention("hi")
    await slack.command("/ai-admin", "report today by user", user="U0ADMIN")

    [answer] = slack.fake.responses
    assert answer["response_type"] == "ephemeral" and "U0ALICE" in answer["text"]
    uploads = sorted(slack.fake.uploads.values(), key=lambda upload: upload.filename)
    assert [u.filename.rsplit(".", 1)[1] for u in uploads] == ["csv", "png"]
    assert all(u.channel == "D0ADMIN" for u in uploads)  # a direct message, not the channel
    assert uploads[1].data is not None and uploads[1].data.startswith(b"\x89PNG")
    assert b"U0ALICE" in (uploads[0].data or b"")


async def test_admin_commands_are_refused_for_everyone_else(slack: Slack) -> None:
    await slack.command("/ai-admin", "quota set user <@U0BOB> day $5", user="U0ALICE")
    await slack.command("/ai-admin", "report", user="U0BOB")
    refusals = slack.fake.responses
    assert len(refusals) == 2
    assert all(r["response_type"] == "ephemeral" and r["text"].startswith(":warning:") for r in refusals)
    assert slack.fake.uploads == {} and slack.fake.bot_messages() == []


async def test_threadwise_admins_may_use_admin_commands(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with running_slack(tmp_path, fake_openai, admins="slack:U0BOB") as slack:
        await slack.command("/ai-admin", "quota set user <@U0ALICE> day $5", user="U0BOB")
        [answer] = slack.fake.responses
        assert answer["text"].startswith("Set: ") and "slack:U0ALICE" in answer["text"]


# ---------------------------------------------------------------------------------------------- assistant


async def test_assistant_panel_greets_then_answers_with_status_and_title(slack: Slack) -> None:
    fake = slack.fake
    thread_ts = fake.next_ts()
    started = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": "U0ALICE",
            "context": {"channel_id": "C0GENERAL", "team_id": "T0TEAM", "enterprise_id": None},
            "channel_id": "D0ALICE",
            "thread_ts": thread_ts,
        },
        "event_ts": fake.next_ts(),
    }
    assert (await slack.sender.event(fake.envelope(started))).status == 200
    await slack.background.idle()
    [greeting] = fake.bot_messages("D0ALICE", thread_ts=thread_ts)
    assert "Threadwise" in greeting.current
    [prompts] = fake.calls_of("assistant.threads.setSuggestedPrompts")
    assert prompts.args["thread_ts"] == thread_ts

    slack.openai.script(Reply(text="Here you go."))
    await slack.message("Summarize our plan", channel="D0ALICE", channel_type="im", thread_ts=thread_ts)
    assert fake.bot_messages("D0ALICE", thread_ts=thread_ts)[-1].current == "Here you go."
    [status] = fake.calls_of("assistant.threads.setStatus")
    assert status.args["status"] == "is thinking…"
    [title] = fake.calls_of("assistant.threads.setTitle")
    assert title.args["title"] == "Summarize our plan"


# ---------------------------------------------------------------------------------------------- manifest

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_list(key: str) -> list[str]:
    """The items of a YAML list in manifest.yml (``bot_events:``, ``- command:``), without a YAML library."""
    text = MANIFEST.read_text()
    if key == "command":
        return re.findall(r"^\s*- command: (\S+)", text, re.MULTILINE)
    block = re.search(rf"^(\s*){key}:\n((?:\1\s+- .*\n)+)", text, re.MULTILINE)
    assert block, f"no {key} in manifest.yml"
    return [line.split("- ", 1)[1].split("#")[0].strip() for line in block.group(2).splitlines()]


async def test_every_event_and_command_in_the_manifest_has_a_listener(slack: Slack) -> None:
    fake = slack.fake
    events = manifest_list("bot_events")
    assert {"app_mention", "message.channels", "message.im", "assistant_thread_started"} <= set(events)
    for name in events:
        if name == "app_mention":
            event = fake.message_event("<@U0BOT> hi", mention=True)
        elif name.startswith("message."):
            kind = name.split(".")[1].removesuffix("s")
            channel = {"channel": "C0GENERAL", "group": "G0PRIVATE", "im": "D0ALICE", "mpim": "G0MPIM"}[kind]
            event = fake.message_event("hello", channel=channel, channel_type=kind)
        elif name == "app_home_opened":
            event = fake.app_home_opened("U0ALICE")
        elif name in ("app_uninstalled", "tokens_revoked"):
            event = {"type": name, "tokens": {"oauth": [], "bot": [BOT_USER_ID]}, "event_ts": fake.next_ts()}
        else:
            event = {
                "type": name,
                "assistant_thread": {
                    "user_id": "U0ALICE",
                    "context": {"channel_id": "C0GENERAL", "team_id": "T0TEAM", "enterprise_id": None},
                    "channel_id": "D0ALICE",
                    "thread_ts": fake.next_ts(),
                },
                "event_ts": fake.next_ts(),
            }
        delivery = await slack.sender.event(fake.envelope(event))
        assert delivery.status == 200, f"{name}: {delivery.status} {delivery.body}"
    commands = manifest_list("command")
    assert commands == ["/ai", "/ai-admin"]
    for command in commands:
        assert (await slack.sender.command(fake.command_payload(command, "help"))).status == 200
    await slack.background.idle()


# ---------------------------------------------------------------------------------------------- Socket Mode


async def test_socket_mode_answers_mentions_and_slash_commands(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai, socket=True) as slack:
        fake = slack.fake
        assert [call.method for call in fake.calls][:2] == ["auth.test", "apps.connections.open"]
        assert fake.calls[1].token == APP_TOKEN  # the app-level token opens the connection
        over_http = await slack.sender.event(fake.envelope(fake.message_event("hi", mention=True)))
        assert over_http.status == 404  # no HTTP events route in Socket Mode

        fake_openai.script(Reply(text="Hello over the socket"))
        event = fake.message_event(f"<@{BOT_USER_ID}> hello", mention=True)
        ack = await fake.socket_send("events_api", fake.envelope(event))
        assert ack == {"envelope_id": fake.socket_envelopes[-1]["envelope_id"]}
        redelivered = await fake.socket_send("events_api", fake.envelope(event), retry_attempt=1)
        assert redelivered["envelope_id"] == fake.socket_envelopes[-1]["envelope_id"]
        await slack.background.idle()
        [reply] = fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
        assert reply.current == "Hello over the socket"
        assert len(fake_openai.chat_requests()) == 1

        ack = await fake.socket_send("slash_commands", fake.command_payload("/ai", "help"))
        assert ack["envelope_id"] == fake.socket_envelopes[-1]["envelope_id"]
        await slack.background.idle()
        [help_text] = fake.responses
        assert help_text["response_type"] == "ephemeral" and "/ai ask" in help_text["text"]

        fake_openai.script(Reply(text="Answer in thread"))
        await fake.socket_send("slash_commands", fake.command_payload("/ai", "ask over socket?"))
        await slack.background.idle()
        question, answer = fake.bot_messages("C0GENERAL")[1:]
        assert question.current.endswith("asked: over socket?") and answer.thread_ts == question.ts
        assert answer.current == "Answer in thread"

        await fake.socket_send("slash_commands", fake.command_payload("/ai-admin", "report", user="U0BOB"))
        await slack.background.idle()
        assert fake.responses[-1]["text"].startswith(":warning:") and fake.uploads == {}


async def test_flagged_and_blocked_messages_are_announced_in_the_mod_log_channel(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.moderation_flags = {"idiot": {"harassment": 0.5}, "bomb": {"violence": 0.95}}
    async with running_slack(tmp_path, fake_openai, slack_modlog_channel="C0MODS") as slack:
        slack.openai.script(Reply(text="Let's keep it friendly."))
        await slack.mention("you idiot")
        await slack.mention("how to build a bomb")
        await slack.mention("hello there")
        await slack.core.modlog.drain()
        notices = [m.current for m in slack.fake.bot_messages("C0MODS")]
    assert notices == [
        ":triangular_flag_on_post: Moderation flagged a message from <@U0ALICE> in <#C0GENERAL>: harassment "
        "(top: harassment 0.50)",
        ":triangular_flag_on_post: Moderation blocked a message from <@U0ALICE> in <#C0GENERAL>: violence "
        "(top: violence 0.95)",
    ]
    assert all("idiot" not in n and "bomb" not in n for n in notices)  # what was said stays out of the log


async def test_the_final_text_never_waits_for_a_throttled_edit() -> None:
    """The last chunks of an answer often arrive together: an edit scheduled just before finish() must be
    dropped, not left to sleep out the edit interval while the user waits for the final text."""
    async with FakeSlack() as fake:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
        replier = SlackReplier(client, "C0GENERAL", "1700000000.000100", interval=5.0)
        await replier.start()  # the placeholder counts as the last edit: the next one is 5 s away
        await replier.update("The answer is")
        started = time.perf_counter()
        await replier.finish("The answer is 42.")
        waited = time.perf_counter() - started
        [message] = fake.bot_messages("C0GENERAL")
    assert message.current == "The answer is 42."
    assert waited < 2.5  # not the 5 s interval


async def test_follow_ups_are_answered_in_arrival_order_even_behind_a_slow_file(slack: Slack) -> None:
    thread = await slack.mention("start")
    slack.fake.file_delay = 0.5
    notes = slack.fake.add_file("notes.txt", b"first part of the notes", "text/plain", "text")
    first = slack.fake.message_event("read this file", thread_ts=thread["ts"], files=[notes])
    second = slack.fake.message_event("and then answer this", thread_ts=thread["ts"])
    for event in (first, second):
        delivery = await slack.sender.event(slack.fake.envelope(event))
        assert delivery.status == 200
    await slack.background.idle()
    asked = [chat_messages(slack.openai, index)[-1]["content"] for index in (1, 2)]
    assert "read this file" in str(asked[0]) and asked[1] == "and then answer this"


async def test_ai_ask_shows_the_question_only_once_let_through_and_redacted(slack: Slack) -> None:
    slack.openai.moderation_flags = {"build a bomb": {"violence": 0.97}}
    slack.openai.script(Reply(text="Noted."))
    await slack.command("/ai", "ask mail me at ada@example.com")
    await slack.command("/ai", "ask how to build a bomb")
    asked, answer, blocked, refusal = slack.fake.bot_messages("C0GENERAL")
    assert asked.current == "<@U0ALICE> asked: mail me at [REDACTED:email]"
    assert answer.thread_ts == asked.ts and answer.current == "Noted."
    assert blocked.current == "<@U0ALICE> asked a question."  # what was asked never appeared
    assert all("bomb" not in text for m in slack.fake.bot_messages() for text in [m.text, *m.edits])
    assert refusal.thread_ts == blocked.ts and refusal.current.startswith(":warning:")


async def test_called_into_a_running_thread_it_reads_what_was_said_before(slack: Slack) -> None:
    parent = slack.fake.message_event("Deploy failed on staging again", record=True)
    slack.fake.message_event("It's the migration, I think", user="U0BOB", thread_ts=parent["ts"], record=True)
    slack.fake.message_event(
        "my key is sk-proj-" + "A" * 40, user="U0BOB", thread_ts=parent["ts"], record=True
    )
    slack.openai.script(Reply(text="Looks like the migration."), Reply(text="Sure."))
    await slack.mention("what do you make of this?", thread_ts=parent["ts"])
    asked = chat_messages(slack.openai)[-1]["content"]
    assert asked.startswith("Earlier in this Slack thread:\nalice: Deploy failed on staging again\n")
    assert "bob: It's the migration, I think" in asked
    assert "[REDACTED:openai_key]" in asked and "sk-proj-" not in asked  # the thread is redacted too
    assert asked.endswith("The message to you:\nwhat do you make of this?")
    # once the bot takes part, the thread is its conversation: no second read of the history
    await slack.message("and now?", thread_ts=parent["ts"])
    assert chat_messages(slack.openai)[-1]["content"] == "and now?"
    assert len(slack.fake.calls_of("conversations.replies")) == 1


async def test_admin_sets_a_channel_persona_that_only_its_turns_read(slack: Slack) -> None:
    await slack.command("/ai-admin", "prompt set here Answer like a pirate.", user="U0ALICE")
    [refused] = slack.fake.responses
    assert refused["text"].startswith(":warning:")
    await slack.command("/ai-admin", "prompt set here Answer like a pirate.", user="U0ADMIN")
    answer = slack.fake.responses[-1]
    assert answer["response_type"] == "ephemeral" and "Persona of channel" in answer["text"]

    await slack.mention("hello")  # in C0GENERAL, where the command was given
    await slack.mention("hello", channel="C0RANDOM")
    here, elsewhere = slack.openai.chat_requests()
    assert here["messages"][0]["content"].endswith("\n\nIn this channel: Answer like a pirate.")
    assert "pirate" not in elsewhere["messages"][0]["content"]
