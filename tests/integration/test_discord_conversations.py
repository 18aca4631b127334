"""Discord conversations end to end: `/ai chat` threads, follow-ups, mentions, DMs, `/ai ask`, long answers,
image attachments, rate limits and duplicate deliveries, through the real discord.py client."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.domain.errors import BotError
from core.domain.types import ChatUser
from tests.fakes.openai_api import Reply
from tests.integration.discord_harness import EDIT_INTERVAL, Harness, running_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as harness:
        yield harness


def user_texts(body: dict[str, object]) -> list[str]:
    texts = []
    for message in body["messages"]:  # type: ignore[attr-defined]
        if message["role"] in ("user", "assistant"):
            content = message["content"]
            texts.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content))
    return texts


async def test_commands_are_registered_at_start(bot: Harness) -> None:
    registered = {command["name"]: command for command in bot.discord.commands["global"]}
    assert set(registered) == {"ai", "ai-admin", "Ask Threadwise"}
    assert registered["Ask Threadwise"]["type"] == 3  # a message context-menu command
    ai = {option["name"]: option for option in registered["ai"]["options"]}
    assert set(ai) == {"ask", "chat", "reset", "usage", "model", "image", "forget", "export", "help"}
    assert [o["name"] for o in ai["chat"]["options"]] == ["prompt"]
    assert [o["name"] for o in ai["model"]["options"]] == ["name"]
    admin = registered["ai-admin"]
    assert int(admin["default_member_permissions"]) == 1 << 5  # Manage Server
    assert {o["name"] for o in admin["options"]} == {
        "quota",
        "report",
        "ban",
        "unban",
        "moderation",
        "tools",
        "prompt",
    }
    identify = bot.discord.identify_payload
    assert identify is not None and identify["intents"] & (1 << 15)  # Message Content


async def test_ai_chat_opens_a_thread_streams_the_answer_and_continues_it(bot: Harness) -> None:
    fake = bot.discord
    answer = (
        "Day one: walk Alfama and take tram 28 early.\n\n"
        "Day two: Belém, the tower and pastéis de nata.\n\n"
        "Day three: LX Factory, then sunset at a miradouro."
    )
    bot.openai.script(Reply(answer, chunk_chars=6, chunk_delay=0.03))
    interaction = await fake.interact("ai", "chat", {"prompt": "Plan a weekend in Lisbon"})

    thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
    thread = fake.threads[thread_id]
    assert thread["name"] == "Plan a weekend in Lisbon"
    assert int(thread["parent_id"]) == fake.channel_id
    replies = await fake.wait_for(
        lambda: (
            [m for m in fake.bot_messages(thread_id) if m.content == answer] and fake.bot_messages(thread_id)
        )
    )
    assert len(replies) == 1
    reply = replies[0]
    assert reply.edits >= 1  # streamed: first part posted, then edited up to the full answer
    edits = [c for c in fake.calls if c.method == "PATCH" and c.path.endswith(f"/messages/{reply.id}")]
    gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
    assert all(gap >= EDIT_INTERVAL * 0.8 for gap in gaps[:-1])  # throttled (the final edit comes at once)
    assert interaction.callback_type == 4  # answered with the question, at once
    starter = fake.messages[interaction.original_id or 0]
    assert starter.id == thread_id and "Plan a weekend in Lisbon" in starter.content

    bot.openai.script(Reply("Day two: Sintra by train."))
    await fake.message_create(thread_id, "And on day two?")  # no mention needed in the conversation thread
    await fake.wait_for(
        lambda: any(m.content == "Day two: Sintra by train." for m in fake.bot_messages(thread_id))
    )
    second = bot.openai.chat_requests()[-1]
    assert user_texts(second) == ["Plan a weekend in Lisbon", answer, "And on day two?"]


async def test_messages_in_other_threads_and_channels_are_ignored(bot: Harness) -> None:
    fake = bot.discord
    other = fake.add_thread(fake.channel_id, "people talking", int(fake.owner["id"]))
    await fake.message_create(other, "not for the bot")
    await fake.message_create(fake.channel_id, "nor this")
    bot.openai.script(Reply("Here."))
    await fake.message_create(other, f"<@{fake.app_id}> now you", mention_bot=True)
    await fake.wait_for(lambda: fake.bot_messages(other))
    assert user_texts(bot.openai.chat_requests()[-1]) == ["now you"]
    assert len(bot.openai.chat_requests()) == 1


async def test_a_mention_in_a_channel_opens_a_thread_from_the_message(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.script(Reply("Hello from the thread."))
    message_id = await fake.message_create(
        fake.channel_id, f"<@{fake.app_id}> what is a monad?", mention_bot=True
    )
    await fake.wait_for(lambda: fake.bot_messages(message_id))  # thread id = message id
    assert fake.threads[message_id]["name"] == "what is a monad?"
    assert [m.content for m in fake.bot_messages(message_id)] == ["Hello from the thread."]
    assert fake.bot_messages(fake.channel_id) == []
    assert user_texts(bot.openai.chat_requests()[-1]) == ["what is a monad?"]


async def test_direct_messages_are_a_conversation(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("First."), Reply("Second."))
    await fake.message_create(dm, "hi")
    await fake.wait_for(lambda: fake.bot_messages(dm))
    await fake.message_create(dm, "again")
    await fake.wait_for(lambda: len(fake.bot_messages(dm)) == 2)
    assert user_texts(bot.openai.chat_requests()[-1]) == ["hi", "First.", "again"]


async def test_bot_and_system_messages_are_ignored(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    other_bot = fake.user(fake.snowflake(), "otherbot", bot=True)
    await fake.message_create(dm, "I am a bot", author=other_bot)
    await fake.message_create(dm, "pinned a message", message_type=6)  # CHANNEL_PINNED_MESSAGE
    bot.openai.script(Reply("Only you."))
    await fake.message_create(dm, "a person")
    await fake.wait_for(lambda: fake.bot_messages(dm))
    assert len(bot.openai.chat_requests()) == 1
    assert user_texts(bot.openai.chat_requests()[0]) == ["a person"]


async def test_ai_ask_answers_in_place(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.script(Reply("42.", chunk_delay=0.01))
    interaction = await fake.interact("ai", "ask", {"prompt": "What is six times seven?"})
    await fake.wait_for(
        lambda: interaction.original_id and "42." in fake.messages[interaction.original_id].content
    )
    assert interaction.callback_type == 5 and not interaction.ephemeral  # deferred, public
    original = fake.messages[interaction.original_id or 0]
    assert original.content == "> What is six times seven?\n42."
    assert fake.threads == {}
    assert interaction.callback_at is not None and interaction.callback_at - interaction.sent_at < 3


async def test_a_long_answer_is_split_into_messages_of_at_most_2000_characters(bot: Harness) -> None:
    fake = bot.discord
    paragraph = "This sentence is part of a long answer about distributed systems. " * 5
    answer = "\n".join(paragraph.strip() for _ in range(8))  # about 2,600 characters
    assert 2400 < len(answer) < 4000
    bot.openai.script(Reply(answer, chunk_chars=200))
    dm = fake.dm_channel(fake.owner)
    await fake.message_create(dm, "tell me everything")
    messages = await fake.wait_for(
        lambda: (found := fake.bot_messages(dm)) and "\n".join(m.content for m in found) == answer and found
    )
    assert len(messages) == 2
    assert all(len(m.content) <= 2000 for m in messages)
    assert messages[0].content.endswith(".")  # cut at a line break, not mid-sentence


async def test_an_image_attachment_reaches_the_model(bot: Harness) -> None:
    from tests.fakes.openai_api import png_bytes

    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("A blue square."))
    await fake.message_create(
        dm,
        "what is this?",
        files=[
            ("square.png", "image/png", png_bytes(64, 64)),
            ("fake.png", "image/png", b"not an image at all"),
            ("archive.zip", "application/zip", b"PK\x03\x04"),
        ],
    )
    reply = await fake.wait_for(lambda: fake.bot_messages(dm))
    content = bot.openai.chat_requests()[-1]["messages"][-1]["content"]
    images = [part for part in content if part["type"] == "image_url"]
    assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    text = reply[0].content
    assert text.startswith("A blue square.")
    assert "fake.png" in text and "archive.zip" in text  # skipped files are named under the answer


async def test_a_rate_limited_post_is_retried_by_discord_py(bot: Harness) -> None:
    fake = bot.discord
    fake.rate_limit("POST", "/channels/{id}/messages", retry_after=0.05)
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("After the wait."))
    await fake.message_create(dm, "hello")
    await fake.wait_for(lambda: [m for m in fake.bot_messages(dm) if m.content == "After the wait."])
    statuses = [c.status for c in fake.calls if c.method == "POST" and c.route == "/channels/{id}/messages"]
    assert statuses == [429, 200]
    assert len(fake.bot_messages(dm)) == 1


async def test_a_duplicate_delivery_is_answered_once(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.script(Reply("Once."), Reply("Twice?"))
    duplicates = bot.core.metrics.turns.labels("discord", "duplicate", "")
    message_id = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> hello", mention_bot=True)
    await fake.message_create(
        fake.channel_id, f"<@{fake.app_id}> hello", mention_bot=True, message_id=message_id
    )
    await fake.wait_for(lambda: duplicates._value.get() == 1)
    assert [m.content for m in fake.bot_messages(message_id)] == ["Once."]
    assert len(bot.openai.chat_requests()) == 1
    assert len(fake.threads) == 1


async def test_a_text_file_is_read_with_the_message(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("It lists two tasks."))
    await fake.message_create(
        dm, "summarise", files=[("todo.txt", "text/plain", b"- buy milk\n- fix bug 7\n")]
    )
    await fake.wait_for(lambda: fake.bot_messages(dm))
    (sent,) = user_texts(bot.openai.chat_requests()[-1])
    assert sent.startswith("summarise") and "fix bug 7" in sent and "todo.txt" in sent


async def test_ai_chat_in_a_dm_continues_the_dm(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("Sure."), Reply("Done."))
    interaction = await fake.interact("ai", "chat", {"prompt": "help me write"}, channel_id=dm)
    await fake.wait_for(lambda: fake.bot_messages(dm))
    assert interaction.callback_type == 4 and fake.threads == {}
    await fake.message_create(dm, "thanks")
    await fake.wait_for(lambda: len(fake.bot_messages(dm)) == 2)
    assert user_texts(bot.openai.chat_requests()[-1]) == ["help me write", "Sure.", "thanks"]


async def test_a_failed_ask_is_shown_only_to_the_asker(bot: Harness) -> None:
    fake = bot.discord
    await bot.core.admin.ban(
        ChatUser("discord", "0", "ops", is_admin=True),
        f"discord:{fake.owner['id']}",
        reason="test",
        until=None,
    )
    interaction = await fake.interact("ai", "ask", {"prompt": "hello?"})
    await fake.wait_for(
        lambda: interaction.original_id and not fake.messages[interaction.original_id].loading
    )
    notice = fake.messages[interaction.original_id or 0]
    # refused before anything public: not even a "thinking…" message is shown in the channel
    assert interaction.ephemeral and notice.ephemeral and notice.content.startswith("⚠️")
    assert interaction.followup_ids == []
    assert bot.openai.chat_requests() == []


async def test_the_sharded_client_connects_and_answers(tmp_path: Path) -> None:
    async with running_bot(tmp_path, sharded=True) as bot:
        fake = bot.discord
        assert any(c.route == "/gateway/bot" for c in fake.calls)
        assert fake.identify_payload is not None and fake.identify_payload["shard"] == [0, 1]
        dm = fake.dm_channel(fake.owner)
        bot.openai.script(Reply("Sharded hello."))
        await fake.message_create(dm, "hi")
        await fake.wait_for(lambda: fake.bot_messages(dm))


async def test_a_wrong_token_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BotError) as raised:
        async with running_bot(tmp_path, token="wrong-token"):
            pass
    assert "DISCORD_BOT_TOKEN" in raised.value.user_message


async def test_a_long_ask_answer_continues_in_a_follow_up(bot: Harness) -> None:
    fake = bot.discord
    answer = "\n".join(f"Point {n}: " + ("details of this point " * 6).strip() for n in range(20))
    assert len(answer) > 2500
    bot.openai.script(Reply(answer, chunk_chars=300))
    interaction = await fake.interact("ai", "ask", {"prompt": "explain at length"})

    def shown() -> str:
        ids = [interaction.original_id or 0, *interaction.followup_ids]
        return "\n".join(fake.messages[i].content for i in ids if i in fake.messages)

    await fake.wait_for(lambda: shown() == f"> explain at length\n{answer}")
    assert len(interaction.followup_ids) == 1
    assert not fake.messages[interaction.followup_ids[0]].ephemeral
    assert all(
        len(fake.messages[i].content) <= 2000 for i in [interaction.original_id, *interaction.followup_ids]
    )


async def test_messages_sent_back_to_back_in_a_thread_are_answered_in_order(bot: Harness) -> None:
    from tests.fakes.openai_api import png_bytes

    fake = bot.discord
    bot.openai.script(Reply("Opened."))
    await fake.interact("ai", "chat", {"prompt": "count with me"})
    thread = await fake.wait_for(lambda: next(iter(fake.threads), None))
    await fake.wait_for(lambda: fake.bot_messages(thread))
    # the first one carries an image to download, so it is slower to hand over than the second
    await fake.message_create(thread, "one", files=[("one.png", "image/png", png_bytes(32, 32))])
    await fake.message_create(thread, "two")
    await fake.wait_for(lambda: len(fake.bot_messages(thread)) == 3)  # the fake echoes the last user text
    assert [m.content for m in fake.bot_messages(thread)] == ["Opened.", "echo: one", "echo: two"]
    history = user_texts(bot.openai.chat_requests()[-1])
    assert history == ["count with me", "Opened.", "one", "echo: one", "two"]


async def test_flagged_messages_are_announced_in_the_mod_log_channel(tmp_path: Path) -> None:
    async with running_bot(tmp_path, modlog_in_general=True) as bot:
        fake = bot.discord
        bot.openai.moderation_flags = {"idiot": {"harassment": 0.5}}
        bot.openai.script(Reply("Let's keep it friendly."), Reply("Still friendly."))
        dm = fake.dm_channel(fake.owner)
        await fake.message_create(dm, "you idiot")  # a DM belongs to no server: not for this mod log
        await fake.wait_for(lambda: fake.bot_messages(dm))
        thread = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> you idiot", mention_bot=True)
        await fake.wait_for(lambda: fake.bot_messages(thread))  # answered in the thread it opened
        await bot.core.modlog.drain()
        notices = [
            m.content for m in fake.bot_messages(fake.channel_id) if m.content.startswith("\U0001f6a9")
        ]
    owner = fake.owner["id"]
    assert notices == [
        f"\U0001f6a9 Moderation flagged a message from <@{owner}> in <#{fake.channel_id}>: "
        "harassment (top: harassment 0.50)"
    ]


async def test_ai_chat_shows_only_the_redacted_question_and_takes_a_refused_one_back(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.moderation_flags = {"build a bomb": {"violence": 0.97}}
    bot.openai.script(Reply("Noted."))
    first = await fake.interact("ai", "chat", {"prompt": "mail me at ada@example.com"})
    await fake.wait_for(lambda: len(fake.threads) == 1)
    (thread_one,) = fake.threads
    await fake.wait_for(lambda: fake.bot_messages(thread_one))
    opening = fake.messages[first.original_id] if first.original_id else None
    assert opening is not None and opening.content.endswith("mail me at [REDACTED:email]")
    assert fake.threads[thread_one]["name"] == "mail me at [REDACTED:email]"

    refused = await fake.interact("ai", "chat", {"prompt": "how to build a bomb"})
    await fake.wait_for(lambda: len(fake.threads) == 2)
    thread_two = next(t for t in fake.threads if t != thread_one)
    await fake.wait_for(lambda: fake.threads[thread_two]["name"] == "Conversation")
    await fake.wait_for(lambda: "bomb" not in fake.messages[refused.original_id or 0].content)
    assert fake.messages[refused.original_id or 0].content.endswith("started a conversation.")
    assert bot.openai.chat_requests()[-1]["messages"][-1]["content"] != "how to build a bomb"
