"""Malformed Discord dispatches and commands (issue 13 item 11, the Discord half): missing and wrong-typed
fields, odd Unicode, huge arguments, commands that no longer match their registered signature. Whatever the
gateway delivers, the client stays connected, nothing logs a traceback, every command gets an answer only
its user sees, every answer fits in a Discord message, and well-formed messages and commands that follow
are answered as usual."""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db.models import UsageRecord
from tests.fakes.discord_api import FakeInteraction, FakeMessage
from tests.integration.discord_harness import Harness, running_bot
from tests.integration.test_discord_commands import answer

SEED = 13
CASES = 300

ODD: list[Any] = [
    False,
    True,
    None,
    0,
    -1,
    2**70,
    1e308,
    [],
    ["1234", 2],
    {},
    {"id": "1234"},
    "",
    "\ud800",
    "a\udfffb\x00c",
    "\u202e\u0000\ufeff😀" * 50,
    "<" * 10_000,
    "x" * 50_000,
    "not-a-snowflake",
    "99999999999999999999999",
    "2024-13-45T99:99:99",
    [[[[[[[[["deep"]]]]]]]]],
]
MESSAGE_FIELDS = [
    "id",
    "channel_id",
    "guild_id",
    "author",
    "member",
    "content",
    "type",
    "flags",
    "mentions",
    "mention_roles",
    "attachments",
    "webhook_id",
    "timestamp",
    "edited_timestamp",
    "tts",
]
AUTHOR_FIELDS = ["id", "username", "discriminator", "global_name", "avatar", "bot"]
MEMBER_FIELDS = ["roles", "joined_at", "nick", "flags", "permissions", "user"]
ATTACHMENT_FIELDS = ["id", "filename", "size", "url", "proxy_url", "content_type"]
INTERACTION_FIELDS = [
    "id",
    "application_id",
    "type",
    "token",
    "version",
    "data",
    "guild_id",
    "channel_id",
    "channel",
    "member",
    "user",
    "app_permissions",
    "locale",
    "attachment_size_limit",
    "context",
]
DATA_FIELDS = ["id", "name", "type", "options", "guild_id"]
OPTION_FIELDS = ["name", "type", "value", "options"]
CHANNEL_FIELDS = ["id", "type", "name", "parent_id", "position", "permissions", "thread_metadata"]
COMMANDS: list[tuple[str, str, dict[str, str]]] = [
    ("ai", "ask", {"prompt": "hi"}),
    ("ai", "usage", {}),
    ("ai", "model", {"name": "gpt-4o"}),
    ("ai", "image", {"prompt": "a cat"}),
    ("ai", "help", {}),
    ("ai", "reset", {}),
    ("ai-admin", "report", {"args": "today"}),
]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    generous = {"user_rate_limit": "10000/minute", "command_rate_limit": "10000/minute"}
    async with running_bot(tmp_path, limits=generous) as harness:
        yield harness


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.exc_text]


def mutate(target: dict[str, Any], fields: list[str], rng: random.Random) -> None:
    name = rng.choice(fields)
    if rng.random() < 0.25:
        target.pop(name, None)
    else:
        target[name] = copy.deepcopy(rng.choice(ODD))


def mutated_message(bot: Harness, rng: random.Random) -> dict[str, Any]:
    fake = bot.discord
    files = [("notes.txt", "text/plain", b"some notes")] if rng.random() < 0.3 else []
    data = copy.deepcopy(  # the fake's users are shared: mutate a copy
        fake.message_data(
            fake.channel_id, f"<@{fake.app_id}> hello", mention_bot=rng.random() < 0.8, files=files
        )
    )
    for _ in range(rng.randint(1, 3)):
        where = rng.random()
        if where < 0.5:
            mutate(data, MESSAGE_FIELDS, rng)
        elif where < 0.7 and isinstance(data.get("author"), dict):
            mutate(data["author"], AUTHOR_FIELDS, rng)
        elif where < 0.85 and isinstance(data.get("member"), dict):
            mutate(data["member"], MEMBER_FIELDS, rng)
        elif isinstance(data.get("attachments"), list) and data["attachments"][:1] != [None]:
            first = data["attachments"][0] if data["attachments"] else None
            if isinstance(first, dict):
                mutate(first, ATTACHMENT_FIELDS, rng)
    return data


def mutated_interaction(bot: Harness, rng: random.Random) -> tuple[FakeInteraction, dict[str, Any]]:
    group, sub, options = rng.choice(COMMANDS)
    record, shared = bot.discord.interaction_data(group, sub, options, admin=rng.random() < 0.3)
    data = copy.deepcopy(shared)
    for _ in range(rng.randint(1, 3)):
        where = rng.random()
        command = data.get("data")
        if where < 0.35:
            mutate(data, INTERACTION_FIELDS, rng)
        elif where < 0.55 and isinstance(command, dict):
            mutate(command, DATA_FIELDS, rng)
        elif where < 0.75 and isinstance(command, dict) and isinstance(command.get("options"), list):
            sub_option = command["options"][0] if command["options"] else None
            if isinstance(sub_option, dict):
                values = sub_option.get("options")
                target = values[0] if isinstance(values, list) and values and rng.random() < 0.7 else None
                mutate(target if isinstance(target, dict) else sub_option, OPTION_FIELDS, rng)
        elif where < 0.9 and isinstance(data.get("member"), dict):
            member = data["member"]
            if rng.random() < 0.5 and isinstance(member.get("user"), dict):
                mutate(member["user"], AUTHOR_FIELDS, rng)
            else:
                mutate(member, MEMBER_FIELDS, rng)
        elif isinstance(data.get("channel"), dict):
            mutate(data["channel"], CHANNEL_FIELDS, rng)
    return record, data


def answerable(bot: Harness, record: FakeInteraction, data: dict[str, Any]) -> bool:
    """Whether Discord would take an answer to ``data``: its id, token and application are intact."""
    intact = {
        "id": str(record.id),
        "token": record.token,
        "application_id": str(bot.discord.app_id),
        "type": 2,
    }
    return all(data.get(key) == value for key, value in intact.items())


def shown_to_people(bot: Harness) -> list[FakeMessage]:
    return [m for m in bot.discord.messages.values() if m.author_id == bot.discord.app_id]


async def test_a_few_hundred_malformed_dispatches_leave_the_client_connected_and_log_no_traceback(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = bot.discord
    rng = random.Random(SEED)
    expected: list[FakeInteraction] = []
    for _ in range(CASES):
        if rng.random() < 0.5:
            await fake.dispatch("MESSAGE_CREATE", mutated_message(bot, rng))
            continue
        record, data = mutated_interaction(bot, rng)
        if answerable(bot, record, data):
            expected.append(record)
        await fake.dispatch("INTERACTION_CREATE", data)
    for odd in ("just a string", None, 12, [], {"id": "1"}):
        await fake.dispatch("MESSAGE_CREATE", odd)  # type: ignore[arg-type]
        await fake.dispatch("INTERACTION_CREATE", odd)  # type: ignore[arg-type]

    # Every command that can be answered is, and well-formed follow-ups are, on the same connection.
    await fake.wait_for(lambda: all(record.callback_type is not None for record in expected), within=60)
    dm = fake.dm_channel(fake.owner)
    await fake.message_create(dm, "are you there?")  # the OpenAI fake echoes it
    await fake.wait_for(lambda: [m for m in fake.bot_messages(dm) if "are you there?" in m.content], 60)
    (usage,) = await answer(bot, await fake.interact("ai", "usage", channel_id=dm))
    assert usage.ephemeral and "usage" in usage.content.lower()

    assert fake.connections == 1
    assert tracebacks(caplog) == []
    shown = [m.content for m in shown_to_people(bot)]
    assert not [text for text in shown if "{'" in text or "Traceback" in text or len(text) > 2000]
    assert [(c.method, c.route) for c in fake.calls if c.status == 400] == []


# ---------------------------------------------------------------------- the attacker's examples, one by one


async def test_a_command_that_no_longer_matches_its_registration_is_answered_that_it_changed(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """As after an upgrade, until Discord's clients know the new definition: a required option missing, a
    subcommand the bot no longer has, the group invoked without a subcommand."""
    fake = bot.discord
    missing_option = await fake.interact("ai", "ask", {})
    unknown_subcommand = await fake.interact("ai", "translate", {"text": "hola"})
    record, data = fake.interaction_data("ai", "help")
    data["data"]["options"] = []
    await fake.dispatch("INTERACTION_CREATE", data)
    for interaction in (missing_option, unknown_subcommand, record):
        (shown,) = await answer(bot, interaction)
        assert shown.ephemeral and shown.content == "⚠️ This command changed; Discord is updating it. " + (
            "Please try again in a minute."
        )
    assert tracebacks(caplog) == []
    assert bot.openai.chat_requests() == []


async def test_an_option_of_the_wrong_type_is_answered_as_malformed(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    record, data = bot.discord.interaction_data("ai", "ask", {"prompt": 12})
    await bot.discord.dispatch("INTERACTION_CREATE", data)
    (shown,) = await answer(bot, record)
    assert shown.ephemeral and "incomplete or malformed" in shown.content
    assert tracebacks(caplog) == []
    assert bot.openai.chat_requests() == []


async def test_a_huge_model_name_gets_a_refusal_discord_accepts(bot: Harness) -> None:
    fake = bot.discord
    (refused,) = await answer(bot, await fake.interact("ai", "model", {"name": "x" * 6_000}))
    assert refused.ephemeral and "is not available here" in refused.content
    assert "x" * 99 + "…" in refused.content and len(refused.content) < 400
    report = await fake.interact("ai-admin", "report", {"args": "today by " + "y" * 6_000}, admin=True)
    (refused,) = await answer(bot, report)
    assert refused.ephemeral and "y" * 99 + "…" in refused.content and len(refused.content) < 400
    assert [(c.method, c.route) for c in fake.calls if c.status >= 400] == []


async def test_an_image_prompt_over_the_limit_is_refused_before_it_is_paid_for(bot: Harness) -> None:
    fake = bot.discord
    (refused,) = await answer(bot, await fake.interact("ai", "image", {"prompt": "a" * 4_001}))
    assert refused.ephemeral
    assert "4,001 characters" in refused.content and "at most 4,000" in refused.content
    assert [r for r in bot.openai.requests if r.path == "/v1/images/generations"] == []
    async with bot.core.database.reader() as session:
        assert (await session.execute(select(UsageRecord))).scalars().all() == []

    shown = await answer(bot, await fake.interact("ai", "image", {"prompt": "<" * 4_000}))
    assert len(shown) == 1 and len(shown[0].files) == 1  # one message: the caption is cut, not split
    assert shown[0].content.startswith("Image for: <<<") and len(shown[0].content) < 400


async def test_commands_are_rate_limited_per_user(tmp_path: Path) -> None:
    async with running_bot(tmp_path, limits={"command_rate_limit": "2/minute"}) as bot:
        fake = bot.discord
        for _ in range(2):
            (shown,) = await answer(bot, await fake.interact("ai", "help"))
            assert "/ai chat" in shown.content
        (refused,) = await answer(bot, await fake.interact("ai", "usage"))
        assert refused.ephemeral and "faster than allowed (2 per 1 minute)" in refused.content
        other = fake.user(fake.snowflake(), "other")
        (shown,) = await answer(bot, await fake.interact("ai", "help", user=other))
        assert "/ai chat" in shown.content


async def test_a_redelivered_interaction_is_answered_once(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = bot.discord
    record, data = fake.interaction_data("ai", "ask", {"prompt": "hello once"})
    await fake.dispatch("INTERACTION_CREATE", data)
    await fake.dispatch("INTERACTION_CREATE", data)
    shown = await answer(bot, record)
    await fake.wait_for(lambda: "hello once" in shown[0].content)
    callbacks = [c for c in fake.calls if c.route == "/interactions/{id}/{token}/callback"]
    assert len(callbacks) == 1 and [c.status for c in fake.calls if c.status >= 400] == []
    assert len(bot.openai.chat_requests()) == 1
    assert tracebacks(caplog) == []


async def test_a_message_discord_py_cannot_read_leaves_the_connection_up(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = bot.discord
    for broken in ({"author": None}, {"author": {"id": "1"}}, {"content": 5}, {"attachments": [{}]}):
        data = copy.deepcopy(fake.message_data(fake.channel_id, f"<@{fake.app_id}> hi", mention_bot=True))
        await fake.dispatch("MESSAGE_CREATE", data | broken)
    channel = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> still there?", mention_bot=True)
    thread = await fake.wait_for(lambda: channel in fake.threads and fake.bot_messages(channel))
    assert "still there?" in thread[0].content
    assert fake.connections == 1 and tracebacks(caplog) == []


async def test_lone_surrogates_and_nuls_are_replaced_at_the_edge(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    await fake.message_create(dm, "tell me about \ud800 this\x00 and \udfff that")
    (reply,) = await fake.wait_for(lambda: fake.bot_messages(dm))
    assert reply.content == "echo: tell me about \ufffd this and \ufffd that"
    assert tracebacks(caplog) == []
