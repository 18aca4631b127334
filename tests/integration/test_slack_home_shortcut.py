"""Issue 15 parts 5: the Slack App Home (the viewer's real numbers, an admin's workspace summary, that
workspace's token in OAuth mode) and the message shortcut "Ask Threadwise about this" (answered in the
message's thread with the message and its thread, redacted, as context; forged or replayed requests and
banned users refused), at the wire: signed requests to POST /slack/events through the real bolt app, the
Slack fake answering slack_sdk, the OpenAI fake answering the openai SDK."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.bootstrap import open_core
from bots.http import HttpServer
from bots.inflight import InFlight
from bots.slack.app import open_slack
from bots.slack.config import SlackOptions
from core.money.pricing import format_usd
from core.settings import load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import (
    BOT_TOKEN,
    OTHER_TEAM,
    SIGNING_SECRET,
    TEAM_ID,
    EventSender,
    FakeSlack,
    Fault,
)
from tests.integration.test_slack_adapter import Slack, running_slack
from tests.integration.test_slack_oauth import distributed

SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
EMAIL = "bob.secret@example.com"


@contextlib.asynccontextmanager
async def running(tmp_path: Path, openai: FakeOpenAI, **groups: dict[str, Any]) -> AsyncIterator[Slack]:
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        fake.add_user("U0BOB", "bob")
        fake.add_user("U0ADMIN", "ada", admin=True)
        fake.add_user("U0OPS", "ops")  # an operator (THREADWISE_ADMINS): may ban anyone
        settings = load_settings(
            None,
            openai={"api_key": "test-key", "base_url": openai.base_url},
            slack={
                "bot_token": BOT_TOKEN,
                "app_token": "",
                "signing_secret": SIGNING_SECRET,
                "api_url": fake.api_url,
            },
            service={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}", "port": "0"},
            threadwise={"openai_max_retries": "0", **groups.pop("threadwise", {})},
            **groups,
        )
        async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
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
    async with running(
        tmp_path,
        fake_openai,
        limits={"user_daily_budget_usd": "1", "workspace_monthly_budget_usd": "50"},
        threadwise={"models": "gpt-4o-mini,gpt-4.1", "admins": "slack:U0OPS"},
    ) as started:
        yield started


async def open_home(slack: Slack, user: str, team: str = TEAM_ID) -> None:
    delivery = await slack.sender.event(slack.fake.envelope(slack.fake.app_home_opened(user, team=team)))
    assert delivery.status == 200, delivery.body
    await slack.background.idle()


def home_text(fake: FakeSlack, user: str, team: str = TEAM_ID) -> str:
    view = fake.home_views[(team, user)]
    return "\n".join(json.dumps(block) for block in view["blocks"])


# ---------------------------------------------------------------------------------------------- App Home


async def test_home_shows_the_viewers_own_usage_budgets_left_and_models_and_admins_the_workspace(
    slack: Slack,
) -> None:
    fake = slack.fake
    slack.openai.script(Reply(text="Hello Alice", prompt_tokens=1_000, completion_tokens=500))
    await slack.mention("hello")
    cost = slack.core.budgets.prices.chat_cost(
        "gpt-4o-mini", input_tokens=1_000, cached_tokens=0, output_tokens=500
    )
    spent = format_usd(cost.micros)

    await open_home(slack, "U0ALICE")
    [publish] = fake.calls_of("views.publish")
    assert publish.args["user_id"] == "U0ALICE" and publish.token == BOT_TOKEN
    alice = home_text(fake, "U0ALICE")
    assert f"Today: {spent} (1,500 tokens)" in alice and f"This month: {spent} (1,500 tokens)" in alice
    assert f"Your daily budget: {format_usd(1_000_000 - cost.micros)} left of $1.00" in alice
    assert f"This workspace's monthly budget: {format_usd(50_000_000 - cost.micros)} left of $50.00" in alice
    assert "`gpt-4o-mini` (default)" in alice and "`gpt-4.1`" in alice
    assert "admins only" not in alice  # no workspace summary for a member

    await open_home(slack, "U0ADMIN")  # a workspace admin (users.info is_admin)
    admin = home_text(fake, "U0ADMIN")
    assert "Today: $0.00 (0 tokens)" in admin  # the admin's own usage: nothing yet
    assert "This workspace (admins only)" in admin
    assert f"Today: {spent} (1,500 tokens)" in admin  # the workspace's spend today
    assert f"<@U0ALICE>: {spent} (1,500 tokens)" in admin  # its top user this month


async def test_opening_the_home_again_at_once_publishes_once_and_the_messages_tab_publishes_nothing(
    slack: Slack,
) -> None:
    fake = slack.fake
    await open_home(slack, "U0BOB")
    await open_home(slack, "U0BOB")  # within the debounce: the page would show the same numbers
    messages_tab = fake.envelope(fake.app_home_opened("U0ALICE", tab="messages"))
    assert (await slack.sender.event(messages_tab)).status == 200
    await slack.background.idle()
    assert [call.args["user_id"] for call in fake.calls_of("views.publish")] == ["U0BOB"]
    assert "No budget limits apply" not in home_text(fake, "U0BOB")  # bob has the default budgets too


async def test_home_of_a_second_workspace_is_published_with_its_own_token(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake, distributed(tmp_path, fake_openai, fake) as slack:
        for team in (TEAM_ID, OTHER_TEAM):
            assert (await slack.install(team)).status == 200
        delivery = await slack.sender.event(fake.envelope(fake.app_home_opened("U0ALICE", team=OTHER_TEAM)))
        assert delivery.status == 200
        await slack.background.idle()
        [publish] = fake.calls_of("views.publish")
        assert publish.token == slack.token_of(OTHER_TEAM) and publish.team == OTHER_TEAM
        assert "Your usage" in "\n".join(
            json.dumps(b) for b in fake.home_views[(OTHER_TEAM, "U0ALICE")]["blocks"]
        )


# ---------------------------------------------------------------------------------------------- shortcut


def thread_with_a_secret(fake: FakeSlack) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bob's thread in #general: a question, then a reply holding an API key and an e-mail address."""
    parent = fake.message_event("How do we call the billing API from the worker?", user="U0BOB", record=True)
    reply = fake.message_event(
        f"Use key {SECRET} and mail {EMAIL} if it fails", user="U0BOB", thread_ts=parent["ts"], record=True
    )
    return parent, reply


async def test_shortcut_answers_in_the_thread_with_the_message_and_its_thread_redacted(slack: Slack) -> None:
    fake = slack.fake
    parent, reply = thread_with_a_secret(fake)
    slack.openai.script(Reply(text="Bob explains how to call the billing API."))
    delivery = await slack.sender.interactive(fake.shortcut_payload(reply, user="U0ALICE"))
    assert delivery.status == 200 and delivery.body == ""  # acked at once, answered in the background
    await slack.background.idle()

    [answer] = fake.bot_messages("C0GENERAL", thread_ts=parent["ts"])
    assert answer.current == "Bob explains how to call the billing API."
    [request] = slack.openai.chat_requests()
    asked = json.dumps(request["messages"][-1])
    assert SECRET not in asked and EMAIL not in asked  # redacted before the model saw it
    assert "[REDACTED:openai_key]" in asked and "[REDACTED:email]" in asked
    assert "How do we call the billing API from the worker?" in asked  # the thread's earlier message
    assert "from bob" in asked  # who wrote the message, by display name
    assert fake.responses == []  # nothing private to say

    # The thread is a conversation now: a follow-up there needs no mention.
    slack.openai.script(Reply(text="It is in the wiki."))
    await slack.message("where is that documented?", thread_ts=parent["ts"])
    assert [m.current for m in fake.bot_messages("C0GENERAL", thread_ts=parent["ts"])][
        -1
    ] == "It is in the wiki."


async def test_shortcut_answer_has_the_answer_buttons_and_retry_asks_the_same_again(slack: Slack) -> None:
    """The shortcut's answer is an answer like any other: 👍 / 👎 / Retry under it for the one who used the
    shortcut, and Retry asks the model the same built question again (the message and its thread,
    redacted), replacing the answer."""
    fake = slack.fake
    parent, reply = thread_with_a_secret(fake)
    slack.openai.script(Reply(text="A first explanation."), Reply(text="A better explanation."))
    assert (await slack.sender.interactive(fake.shortcut_payload(reply, user="U0ALICE"))).status == 200
    await slack.background.idle()

    [answer] = fake.bot_messages("C0GENERAL", thread_ts=parent["ts"])
    assert answer.current == "A first explanation."
    assert set(answer.buttons()) == {"answer:up", "answer:down", "answer:retry"}

    assert (
        await slack.sender.action(fake.action_payload(answer, "answer:retry", user="U0ALICE"))
    ).status == 200
    await slack.background.idle()

    first, again = (request["messages"][-1] for request in slack.openai.chat_requests())
    assert again == first  # the same built question, redacted as before
    assert "Explain the message below" in json.dumps(again) and SECRET not in json.dumps(again)
    shown = [m.current for m in fake.bot_messages("C0GENERAL", thread_ts=parent["ts"]) if m.ts != answer.ts]
    assert shown == ["A better explanation."]
    assert "Retried by <@U0ALICE>" in str(answer.blocks)
    assert fake.responses == []


async def test_shortcut_on_a_message_with_no_thread_starts_one_under_it(slack: Slack) -> None:
    fake = slack.fake
    message = fake.message_event(f"Reach me at {EMAIL} about the invoice", user="U0BOB", record=True)
    slack.openai.script(Reply(text="Bob wants to be contacted about the invoice."))
    assert (await slack.sender.interactive(fake.shortcut_payload(message, user="U0ALICE"))).status == 200
    await slack.background.idle()
    [answer] = fake.bot_messages("C0GENERAL", thread_ts=message["ts"])
    assert answer.current == "Bob wants to be contacted about the invoice."
    asked = json.dumps(slack.openai.chat_requests()[-1]["messages"][-1])
    assert EMAIL not in asked and "Earlier in this" not in asked  # no thread: the message alone


async def test_shortcut_replayed_is_answered_once(slack: Slack) -> None:
    fake = slack.fake
    _, reply = thread_with_a_secret(fake)
    payload = fake.shortcut_payload(reply, user="U0ALICE")
    slack.openai.script(Reply(text="Once."), Reply(text="Twice."))
    for _ in range(2):
        assert (await slack.sender.interactive(payload)).status == 200
        await slack.background.idle()
    assert len(slack.openai.chat_requests()) == 1
    assert [m.current for m in fake.bot_messages("C0GENERAL", thread_ts=reply["thread_ts"])] == ["Once."]


async def test_shortcut_with_a_forged_signature_is_refused_before_it_is_read(slack: Slack) -> None:
    fake = slack.fake
    _, reply = thread_with_a_secret(fake)
    delivery = await slack.sender.interactive(fake.shortcut_payload(reply), secret="not-the-signing-secret")
    assert delivery.status == 401
    stale = await slack.sender.interactive(fake.shortcut_payload(reply), timestamp=1_600_000_000)
    assert stale.status == 401
    await slack.background.idle()
    assert slack.openai.chat_requests() == [] and fake.bot_messages("C0GENERAL") == []
    assert fake.calls_of("conversations.replies") == []


async def test_shortcut_by_a_banned_user_is_refused_privately_and_posts_nothing(slack: Slack) -> None:
    fake = slack.fake
    await slack.command("/ai-admin", "ban <@U0ALICE> 1d spamming", user="U0OPS")
    _, reply = thread_with_a_secret(fake)
    delivery = await slack.sender.interactive(fake.shortcut_payload(reply, user="U0ALICE"))
    assert delivery.status == 200
    await slack.background.idle()
    assert slack.openai.chat_requests() == []
    assert fake.bot_messages("C0GENERAL", thread_ts=reply["thread_ts"]) == []
    told = fake.responses[-1]  # after the ban's confirmation to the operator
    assert told["response_type"] == "ephemeral" and told["replace_original"] is False
    assert "an admin has blocked you" in told["text"] and "spamming" in told["text"]
    assert fake.calls_of("conversations.replies") == []  # nothing asked of Slack for a refused user


async def test_shortcut_where_the_bot_cannot_read_tells_the_user_privately(slack: Slack) -> None:
    fake = slack.fake
    fake.fail("conversations.replies", Fault(status=200, error="not_in_channel", retry_after=None))
    message = fake.message_event("a message in a channel I'm not in", user="U0BOB", record=True)
    assert (await slack.sender.interactive(fake.shortcut_payload(message))).status == 200
    await slack.background.idle()
    assert slack.openai.chat_requests() == []
    assert any("can't read that conversation" in r["text"] for r in fake.responses)


async def test_a_malformed_shortcut_payload_is_refused_politely(slack: Slack) -> None:
    fake = slack.fake
    message = fake.message_event("hello", user="U0BOB", record=True)
    payload = fake.shortcut_payload(message)
    del payload["message"]["ts"]
    delivery = await slack.sender.interactive(payload)
    assert delivery.status == 200  # validated and dropped: bolt never sees it
    other = await slack.sender.send("payload=%7Bnot+json", "application/x-www-form-urlencoded")
    assert other.status == 400
    await slack.background.idle()
    assert slack.openai.chat_requests() == []


async def test_shortcut_and_home_over_socket_mode(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with running_slack(tmp_path, fake_openai, socket=True) as slack:
        fake = slack.fake
        parent, reply = thread_with_a_secret(fake)
        fake_openai.script(Reply(text="Explained over the socket."))
        ack = await fake.socket_send("interactive", fake.shortcut_payload(reply, user="U0ALICE"))
        assert ack == {"envelope_id": fake.socket_envelopes[-1]["envelope_id"]}  # acked, nothing else
        await fake.socket_send("events_api", fake.envelope(fake.app_home_opened("U0ALICE")))
        await slack.background.idle()
        [answer] = fake.bot_messages("C0GENERAL", thread_ts=parent["ts"])
        assert answer.current == "Explained over the socket."
        assert SECRET not in json.dumps(fake_openai.chat_requests()[-1]["messages"])
        assert "Your usage" in home_text(fake, "U0ALICE")
