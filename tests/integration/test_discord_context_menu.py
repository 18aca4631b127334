"""Issue 15 part 6: the Discord message context-menu command "Ask Threadwise", end to end through the real
discord.py client and the Discord fake: registered with the slash commands as a MESSAGE command, acknowledged
within 3 s, answered in a thread opened from the message with the message and the channel's messages before
it (redacted) as context; a banned user is refused privately and nothing is read or posted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.domain.types import ChatUser
from tests.fakes.openai_api import Reply
from tests.integration.discord_harness import Harness, running_bot

SECRET = "sk-proj-" + "Q9w8E7r6T5y4U3i2O1p0" * 2


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as harness:
        yield harness


def user_text(request: dict[str, object]) -> str:
    messages = request["messages"]
    assert isinstance(messages, list)
    return json.dumps(messages[-1])


async def test_the_context_menu_is_registered_as_a_message_command(bot: Harness) -> None:
    registered = [c for commands in bot.discord.commands.values() for c in commands]
    [menu] = [c for c in registered if c["name"] == "Ask Threadwise"]
    assert menu["type"] == 3  # MESSAGE: shown under Apps on every message


async def test_ask_threadwise_answers_in_a_thread_with_the_message_and_what_came_before(bot: Harness) -> None:
    fake = bot.discord
    colleague = fake.user(fake.snowflake(), "carol")
    await fake.message_create(fake.channel_id, "The deploy failed again last night.", author=colleague)
    picked = await fake.message_create(
        fake.channel_id, f"Try again with token {SECRET} please", author=colleague
    )
    bot.openai.script(Reply("Carol asks you to retry the deploy with a token."))

    interaction = await fake.interact_message("Ask Threadwise", picked)
    await fake.wait_for(lambda: picked in fake.threads and fake.bot_messages(picked))
    [answer] = fake.bot_messages(picked)  # in the thread opened from the picked message
    assert answer.content == "Carol asks you to retry the deploy with a token."
    assert interaction.callback_type == 5 and interaction.ephemeral  # "thinking…" only the user sees

    [request] = bot.openai.chat_requests()
    asked = user_text(request)
    assert SECRET not in asked and "[REDACTED:openai_key]" in asked  # redacted before the model saw it
    assert "The deploy failed again last night." in asked and "(from Carol)" in asked
    assert SECRET not in fake.threads[picked]["name"]  # nor shown in the thread's title

    await fake.wait_for(lambda: "Answered" in fake.messages[interaction.original_id or 0].content)
    # The thread is the conversation now: a follow-up there is answered with the history.
    bot.openai.script(Reply("Yes, from the runbook."))
    await fake.message_create(picked, "is there a runbook?")
    await fake.wait_for(lambda: len(fake.bot_messages(picked)) == 2)
    assert "Carol asks you to retry" in json.dumps(bot.openai.chat_requests()[-1]["messages"])


async def test_ask_threadwise_by_a_banned_user_is_refused_privately(bot: Harness) -> None:
    fake = bot.discord
    await bot.core.admin.ban(
        ChatUser("discord", "0", "ops", is_admin=True),
        f"discord:{fake.owner['id']}",
        reason="spam",
        until=None,
    )
    colleague = fake.user(fake.snowflake(), "carol")
    picked = await fake.message_create(fake.channel_id, "What is this about?", author=colleague)
    reads_before = [c for c in fake.calls if c.method == "GET" and c.route == "/channels/{id}/messages"]

    interaction = await fake.interact_message("Ask Threadwise", picked)
    await fake.wait_for(
        lambda: interaction.original_id and not fake.messages[interaction.original_id].loading
    )
    notice = fake.messages[interaction.original_id or 0]
    assert notice.ephemeral and notice.content.startswith("⚠️") and "blocked" in notice.content
    assert bot.openai.chat_requests() == [] and fake.threads == {}
    reads = [c for c in fake.calls if c.method == "GET" and c.route == "/channels/{id}/messages"]
    assert reads == reads_before  # nothing read for a refused user


async def test_ask_threadwise_answer_has_the_answer_buttons_and_retry_asks_the_same_again(
    bot: Harness,
) -> None:
    """The context menu's answer is an answer like any other: 👍 / 👎 / Retry under it, and Retry asks the
    same built question (the message and what came before, redacted) again, in the same thread."""
    fake = bot.discord
    colleague = fake.user(fake.snowflake(), "carol")
    picked = await fake.message_create(fake.channel_id, f"Deploy with {SECRET} tonight", author=colleague)
    bot.openai.script(Reply("Carol wants a deploy tonight."), Reply("Carol asks for a deploy this evening."))

    await fake.interact_message("Ask Threadwise", picked)
    old = await fake.wait_for(
        lambda: (
            next((m for m in fake.bot_messages(picked) if m.custom_ids()), None)
            if picked in fake.threads
            else None
        )
    )
    retry = [c for c in old.custom_ids() if c.startswith("tw:retry:")]
    assert [c.split(":")[1] for c in old.custom_ids()] == ["fb", "fb", "retry"] and retry

    await fake.click(old.id, retry[0])
    await fake.wait_for(
        lambda: any(m.content == "Carol asks for a deploy this evening." for m in fake.bot_messages(picked))
    )
    first, again = (request["messages"][-1] for request in bot.openai.chat_requests())
    assert again == first and SECRET not in json.dumps(again)
    assert old.custom_ids() == []  # the replaced answer keeps its text, not its buttons
