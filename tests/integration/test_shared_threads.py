"""A thread is shared by everyone in it: only whoever started the conversation, an admin of that workspace or
an operator may reset it or change its model; a banned user is refused every `/ai` command with the ban
message. On the composed core, then through the Slack and Discord command paths against the wire fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.bootstrap import Core, open_core
from core.domain.errors import NotAuthorized
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.settings import load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.integration.discord_harness import running_bot
from tests.integration.test_discord_commands import answer
from tests.integration.test_slack_adapter import chat_messages, running_slack
from tests.support import RecordingReplier

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
ADA = ChatUser("slack", "U0ADA", "ada")
BOB = ChatUser("slack", "U0BOB", "bob")
ADMIN = ChatUser("slack", "U0BOSS", "boss", is_admin=True)  # a workspace admin (the platform says so)
OPERATOR = ChatUser("slack", "U0OPS", "ops")  # listed in THREADWISE_ADMINS
ROOT = ChatUser("cli", "root", "root", is_admin=True)
BLOCKED = "an admin has blocked you"


@pytest.fixture
async def core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> AsyncIterator[Core]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_MODELS": "gpt-4o-mini,gpt-4.1-mini",
        "THREADWISE_ADMINS": "slack:U0OPS",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None)) as composed:
        yield composed


async def turn(core: Core, text: str, event: str, user: ChatUser) -> None:
    await core.turns.handle(IncomingMessage(KEY, user, text, event, datetime.now(UTC)), RecordingReplier())


async def test_only_the_starter_or_an_admin_resets_or_switches_a_shared_thread(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Reply(text="one"), Reply(text="two"), Reply(text="three"))
    await turn(core, "Ada starts", "e1", ADA)
    await turn(core, "Bob joins", "e2", BOB)
    assert await core.turns.started_by(KEY) == "U0ADA"

    with pytest.raises(NotAuthorized) as refused:
        await core.chat.commands.reset(BOB, KEY)
    assert "Only whoever started this conversation" in refused.value.user_message
    with pytest.raises(NotAuthorized):
        await core.chat.commands.set_model(BOB, KEY, "gpt-4.1-mini")
    assert await core.turns.model_of(KEY) == "gpt-4o-mini"
    await core.chat.commands.set_model(BOB, KEY, "")  # asking which model is used is fine
    await turn(core, "still there?", "e3", BOB)
    assert len(fake_openai.chat_requests()[-1]["messages"]) == 6  # nothing was hidden

    await core.chat.commands.set_model(ADA, KEY, "gpt-4.1-mini")
    assert await core.turns.model_of(KEY) == "gpt-4.1-mini"
    for allowed in (ADMIN, OPERATOR, ADA):
        await core.chat.commands.reset(allowed, KEY)


async def test_a_banned_user_is_refused_every_ai_command(core: Core) -> None:
    await core.admin.ban(ROOT, "slack:U0BOB", reason="spam", until=None)
    commands = core.chat.commands
    for command in (
        commands.set_model(BOB, KEY, ""),
        commands.set_model(BOB, KEY, "gpt-4.1-mini"),
        commands.usage(BOB, KEY),
        commands.reset(BOB, KEY),
        commands.help(BOB),
        commands.image(BOB, KEY, "a fox"),
        commands.forget(BOB, KEY, ""),  # erasure for a banned user goes through an operator (README Security)
        commands.forget(BOB, KEY, "confirm"),
    ):
        with pytest.raises(NotAuthorized) as refused:
            await command
        assert BLOCKED in refused.value.user_message
    assert await core.turns.started_by(KEY) is None  # no conversation was opened for Bob


async def test_slack_another_users_reset_is_refused_and_hides_nothing(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as slack:
        fake_openai.script(
            Reply(text="first"), Reply(text="second"), Reply(text="third"), Reply(text="4"), Reply(text="5")
        )
        thread = await slack.mention("remember this")  # Alice starts it
        await slack.message("me too", user="U0BOB", thread_ts=thread["ts"])
        await slack.command("/ai", "reset", user="U0BOB")
        await slack.command("/ai", "model gpt-4o-mini", user="U0BOB")
        await slack.message("still there?", thread_ts=thread["ts"])
        assert [m["role"] for m in chat_messages(slack.openai)][-3:] == ["user", "assistant", "user"]
        await slack.message("admin here", user="U0ADMIN", thread_ts=thread["ts"])
        await slack.command("/ai", "reset", user="U0ADMIN")  # a workspace admin may
        await slack.message("fresh?", thread_ts=thread["ts"])
        assert [m["role"] for m in chat_messages(slack.openai)] == ["system", "user"]

        reset, model, by_admin = slack.fake.responses
        assert reset["text"].startswith(":warning:") and "Only whoever started" in reset["text"]
        assert model["text"].startswith(":warning:") and "Only whoever started" in model["text"]
        assert "no longer see" in by_admin["text"]


async def test_slack_a_banned_users_model_and_usage_get_the_ban_message(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as slack:
        await slack.core.admin.ban(ROOT, "slack:U0BOB", reason="spam", until=None)
        await slack.command("/ai", "model", user="U0BOB")
        await slack.command("/ai", "usage", user="U0BOB")
        model, usage = slack.fake.responses
        assert BLOCKED in model["text"] and BLOCKED in usage["text"]


async def test_discord_only_the_starter_or_a_manage_server_member_resets(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        other = fake.user(fake.snowflake(), "other")
        bot.openai.script(Reply("First answer."))
        await fake.interact("ai", "chat", {"prompt": "hello"})  # the owner (no Manage Server here) starts it
        thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
        await fake.wait_for(lambda: fake.bot_messages(thread_id))

        refused = await answer(bot, await fake.interact("ai", "reset", channel_id=thread_id, user=other))
        assert refused[0].ephemeral and "Only whoever started" in refused[0].content
        switch = {"name": "gpt-4o-mini"}
        refused = await answer(
            bot, await fake.interact("ai", "model", switch, channel_id=thread_id, user=other)
        )
        assert "Only whoever started" in refused[-1].content
        bot.openai.script(Reply("Second."))
        await fake.message_create(thread_id, "go on")
        await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) == 2)
        assert [m["role"] for m in bot.openai.chat_requests()[-1]["messages"]][-3:] == [
            "user",
            "assistant",
            "user",
        ]

        moderator = fake.user(fake.snowflake(), "mod")
        done = await answer(
            bot, await fake.interact("ai", "reset", channel_id=thread_id, user=moderator, admin=True)
        )
        assert not done[0].content.startswith("⚠️")
        mine = await answer(bot, await fake.interact("ai", "reset", channel_id=thread_id))
        assert not mine[0].content.startswith("⚠️")


async def test_discord_a_banned_users_model_and_usage_get_the_ban_message(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        banned = fake.user(fake.snowflake(), "banned")
        await bot.core.admin.ban(ROOT, f"discord:{banned['id']}", reason="spam", until=None)
        every = [("model", {}), ("usage", {}), ("reset", {}), ("help", {}), ("forget", {})]
        every += [("forget", {"confirm": "confirm"}), ("model", {"name": "gpt-4o"})]
        every += [("ask", {"prompt": "hi"}), ("chat", {"prompt": "hi"}), ("image", {"prompt": "a fox"})]
        for subcommand, options in every:
            shown = await answer(bot, await fake.interact("ai", subcommand, options, user=banned))
            assert BLOCKED in shown[-1].content and shown[-1].ephemeral, subcommand
        assert bot.openai.chat_requests() == []
        # nothing of what the banned user asked was shown in the channel, and no thread was opened for it
        assert [m for m in fake.messages.values() if not m.ephemeral and not m.deleted] == []
        assert fake.threads == {}
