"""Discord slash commands end to end: `/ai usage|reset|model|image|help` and `/ai-admin`, acknowledged within
3 s, private (ephemeral) where they should be, admin rights from Manage Server or THREADWISE_ADMINS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord_api import FakeInteraction, FakeMessage
from tests.fakes.openai_api import Reply
from tests.integration.discord_harness import Harness, running_bot

LISTED_ADMIN_ID = 4242


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    groups = {
        "threadwise": {"admins": (f"discord:{LISTED_ADMIN_ID}",), "models": ("gpt-4o-mini", "gpt-4o")},
    }
    async with running_bot(tmp_path, **groups) as harness:
        yield harness


async def answer(bot: Harness, interaction: FakeInteraction) -> list[FakeMessage]:
    """What the caller sees once the command is done: the original response (no longer "thinking…") and any
    follow-ups."""
    fake = bot.discord

    def done() -> list[FakeMessage] | None:
        original = fake.messages.get(interaction.original_id or 0)
        if original is None or original.loading:
            followups = [fake.messages[i] for i in interaction.followup_ids]
            return followups if original is not None and original.deleted and followups else None
        shown = [original] if not original.deleted else []
        return shown + [fake.messages[i] for i in interaction.followup_ids]

    messages: list[FakeMessage] = await fake.wait_for(done)
    assert interaction.callback_at is not None and interaction.callback_at - interaction.sent_at < 3
    return messages


async def test_usage_is_private(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("ok"))
    await fake.message_create(dm, "spend something")
    await fake.wait_for(lambda: fake.bot_messages(dm))

    interaction = await fake.interact("ai", "usage")
    (shown,) = await answer(bot, interaction)
    assert shown.ephemeral
    assert "usage" in shown.content.lower()


async def test_forget_shows_what_it_erases_then_erases_on_confirm(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("noted"))
    await fake.message_create(dm, "remember my plan")
    await fake.wait_for(lambda: fake.bot_messages(dm))

    (asked,) = await answer(bot, await fake.interact("ai", "forget"))
    assert asked.ephemeral and "2 messages in 1 conversations" in asked.content
    (erased,) = await answer(bot, await fake.interact("ai", "forget", {"confirm": "confirm"}))
    assert erased.ephemeral and erased.content.startswith("Erased 2 messages")
    (empty,) = await answer(bot, await fake.interact("ai", "forget"))
    assert empty.content == "I hold nothing of yours."


async def test_help_is_answered_at_once_and_privately(bot: Harness) -> None:
    interaction = await bot.discord.interact("ai", "help")
    (shown,) = await answer(bot, interaction)
    assert interaction.callback_type == 4 and shown.ephemeral
    assert "/ai chat" in shown.content and "quota" not in shown.content  # no admin section for members


async def test_model_and_reset_act_on_the_thread_conversation(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.script(Reply("First answer."))
    chat = await fake.interact("ai", "chat", {"prompt": "hello"})
    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
    await fake.wait_for(lambda: fake.bot_messages(thread_id))
    assert chat.callback_type == 4

    switched = await answer(bot, await fake.interact("ai", "model", {"name": "gpt-4o"}, channel_id=thread_id))
    assert "gpt-4o" in switched[0].content and not switched[0].ephemeral  # a change everyone in it should see
    bot.openai.script(Reply("Second answer."))
    await fake.message_create(thread_id, "go on")
    await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) == 2)
    assert bot.openai.chat_requests()[-1]["model"] == "gpt-4o"

    wrong = await answer(bot, await fake.interact("ai", "model", {"name": "gpt-99"}, channel_id=thread_id))
    assert wrong[0].ephemeral and wrong[0].content.startswith("⚠️")

    reset = await answer(bot, await fake.interact("ai", "reset", channel_id=thread_id))
    assert reset[0].ephemeral
    bot.openai.script(Reply("Fresh."))
    await fake.message_create(thread_id, "start over")
    await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) == 3)
    roles = [m["role"] for m in bot.openai.chat_requests()[-1]["messages"]]
    assert roles == ["system", "user"]


async def test_image_is_sent_as_a_file(bot: Harness) -> None:
    interaction = await bot.discord.interact("ai", "image", {"prompt": "a lighthouse at dusk"})
    shown = await answer(bot, interaction)
    files = [name for message in shown for name, _ in message.files]
    assert len(files) == 1 and files[0].endswith(".png")
    assert not shown[0].ephemeral


async def test_admin_commands_are_refused_for_members(bot: Harness) -> None:
    fake = bot.discord
    member = fake.user(fake.snowflake(), "member")
    interaction = await fake.interact("ai-admin", "report", {"args": "today"}, user=member)
    (shown,) = await answer(bot, interaction)
    assert shown.ephemeral and shown.content.startswith("⚠️")
    assert shown.files == []


async def test_report_for_a_manage_server_member_has_chart_and_csv(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.script(Reply("ok"), Reply("also ok"))
    await answer(bot, await fake.interact("ai", "ask", {"prompt": "spend something in this server"}))
    dm = fake.dm_channel(fake.owner)  # a DM is nobody's server: a server manager's report leaves it out
    await fake.message_create(dm, "spend something privately")
    await fake.wait_for(lambda: fake.bot_messages(dm))

    manager = fake.user(fake.snowflake(), "manager")
    interaction = await fake.interact(
        "ai-admin", "report", {"args": "today by user"}, user=manager, admin=True
    )
    shown = await answer(bot, interaction)
    assert all(message.ephemeral for message in shown)
    files = sorted(name for message in shown for name, _ in message.files)
    assert [name.rsplit(".", 1)[1] for name in files] == ["csv", "png"]
    png = next(data for message in shown for name, data in message.files if name.endswith(".png"))
    assert png.startswith(b"\x89PNG")
    assert f"discord:{fake.owner['id']}" in shown[0].content  # the summary names who spent
    assert "1 calls" in shown[0].content and f"discord:{fake.guild_id}" in shown[0].content


async def test_threadwise_admins_may_use_admin_commands_without_manage_server(bot: Harness) -> None:
    fake = bot.discord
    listed = fake.user(LISTED_ADMIN_ID, "listed")
    interaction = await fake.interact("ai-admin", "quota", {"args": "show"}, user=listed)
    (shown,) = await answer(bot, interaction)
    assert shown.ephemeral and not shown.content.startswith("⚠️")

    ban = await fake.interact("ai-admin", "ban", {"args": f"<@{fake.owner['id']}> 1h testing"}, user=listed)
    (banned,) = await answer(bot, ban)
    assert f"discord:{fake.owner['id']}" in banned.content
    dm = fake.dm_channel(fake.owner)
    await fake.message_create(dm, "am I banned?")
    refused = await fake.wait_for(lambda: fake.bot_messages(dm))
    assert refused[0].content.startswith("⚠️")
    assert bot.openai.chat_requests() == []
