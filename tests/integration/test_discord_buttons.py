"""The buttons under answers on Discord (issue 15, parts 3 and 6), through the real discord.py client and the
Discord fake: 👍 / 👎 and Retry under a finished answer, Stop while it streams; each works for the asker (and
an admin) and is refused, privately, for anyone else; clicks on messages sent before a restart work; forged
and malformed clicks are answered without a traceback and the gateway stays up."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.answers.buttons import NOT_LAST, NOT_YOURS, RETRYING
from core.db.models import AnswerFeedback
from tests.fakes.discord_api import FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.openai_api import FakeOpenAI, Fault, Reply
from tests.integration.discord_harness import Harness, bot_on, running_bot
from tests.integration.test_discord_commands import answer as command_answer
from tests.integration.test_discord_fuzz import ODD, mutate

STALE = "That button doesn't do anything any more."


@pytest.fixture
async def bot(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    """A bot on SQLite, and on the PostgreSQL of TEST_DATABASE_URL when it is set."""
    async with running_bot(tmp_path, service={"database_url": database_url}) as harness:
        yield harness


def stranger(fake: FakeDiscord) -> dict[str, Any]:
    return fake.user(fake.snowflake(), "stranger")


def rated(message: FakeMessage) -> bool:
    return any(custom_id.startswith("tw:fb:up:") for custom_id in message.custom_ids())


async def ask(bot: Harness, question: str, reply: Reply) -> tuple[int, FakeMessage]:
    """``question`` mentioning the bot in #general; the thread it opens and the answer's message with its
    buttons (once the answer is complete)."""
    fake = bot.discord
    bot.openai.script(reply)
    thread = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> {question}", mention_bot=True)
    message = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread) if rated(m)), None))
    return thread, message


def answer_of(message: FakeMessage) -> int:
    (up,) = [c for c in message.custom_ids() if c.startswith("tw:fb:up:")]
    return int(up.rsplit(":", 1)[1])


async def private_reply(fake: FakeDiscord, click: FakeInteraction) -> str:
    """What the clicker alone was told: a follow-up of the deferred click, or the ephemeral response."""
    await fake.wait_for(lambda: click.followup_ids or (click.callback_type == 4 and click.original_id))
    message = fake.messages[click.followup_ids[0] if click.followup_ids else click.original_id or 0]
    assert message.ephemeral
    return message.content


async def votes(bot: Harness) -> list[tuple[str, int, str]]:
    async with bot.core.database.reader() as session:
        rows = await session.scalars(select(AnswerFeedback).order_by(AnswerFeedback.id))
        return [(row.user_id, row.vote, row.model) for row in rows]


def user_texts(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] in ("user", "assistant")]


async def test_an_answer_carries_its_buttons_on_its_last_message(bot: Harness) -> None:
    fake = bot.discord
    long = "\n\n".join(f"Part {n}: " + "a sentence that takes room. " * 20 for n in range(8))  # > 4,000 chars
    thread, last = await ask(bot, "tell me at length", Reply(long, chunk_chars=400))
    messages = fake.bot_messages(thread)
    assert len(messages) >= 3 and messages[-1] is last
    answer = answer_of(last)
    assert last.custom_ids() == [f"tw:fb:up:{answer}", f"tw:fb:down:{answer}", f"tw:retry:{answer}"]
    assert all(m.custom_ids() == [] for m in messages[:-1])  # Stop, on the first while it streamed, is gone
    emoji = [c.get("emoji", {}).get("name") for c in last.components[0]["components"]]
    assert emoji == ["👍", "👎", "🔄"]


async def test_feedback_is_stored_for_the_asker_and_an_admin_and_refused_for_anyone_else(
    bot: Harness,
) -> None:
    fake = bot.discord
    _, message = await ask(bot, "what is a monad?", Reply("A monoid in the category of endofunctors."))
    answer = answer_of(message)

    other = await fake.click(message.id, f"tw:fb:down:{answer}", user=stranger(fake))
    assert await private_reply(fake, other) == f"⚠️ {NOT_YOURS}"
    assert other.callback_type == 6  # acknowledged at once as a deferred update: the message is unchanged
    assert await votes(bot) == []

    mine = await fake.click(message.id, f"tw:fb:up:{answer}")
    assert await private_reply(fake, mine) == "Thanks for the feedback (👍)."
    assert await votes(bot) == [(fake.owner["id"], 1, "gpt-4o-mini")]

    moderator = stranger(fake)
    theirs = await fake.click(message.id, f"tw:fb:down:{answer}", user=moderator, admin=True)  # Manage Server
    assert await private_reply(fake, theirs) == "Thanks for the feedback (👎)."
    assert sorted(await votes(bot)) == sorted(
        [(fake.owner["id"], 1, "gpt-4o-mini"), (moderator["id"], -1, "gpt-4o-mini")]
    )
    assert message.custom_ids() == fake.messages[message.id].custom_ids()  # nothing else changed


async def test_a_click_the_instant_the_buttons_appear_waits_for_the_answer_to_be_stored(bot: Harness) -> None:
    """👍/👎 and Retry arrive with the answer's last text, a moment before its turn is stored: a click in that
    moment is not refused as "still being written"."""
    fake = bot.discord
    clicks: list[FakeInteraction] = []

    async def click_at_once(message: FakeMessage) -> None:
        up = [c for c in message.custom_ids() if c.startswith("tw:fb:up:")]
        if up and not clicks:
            clicks.append(await fake.click(message.id, up[0]))
            await asyncio.sleep(0.2)  # the bot reads the click while it still waits for this answer

    fake.on_written = click_at_once
    await ask(bot, "name a fruit", Reply("Pear."))
    fake.on_written = None
    [click] = clicks
    assert await private_reply(fake, click) == "Thanks for the feedback (👍)."
    assert await votes(bot) == [(fake.owner["id"], 1, "gpt-4o-mini")]


async def test_stop_ends_a_slow_answer_keeping_what_was_written_with_a_note(bot: Harness) -> None:
    fake = bot.discord
    words = " ".join(f"word{n}" for n in range(400))
    bot.openai.script(Reply(words, chunk_chars=8, chunk_delay=0.05))  # about 20 s if nobody stops it
    thread = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> count slowly", mention_bot=True)
    first = await fake.wait_for(lambda: next((m for m in fake.bot_messages(thread) if m.custom_ids()), None))
    (stop,) = first.custom_ids()
    assert stop.startswith("tw:stop:")

    refused = await fake.click(first.id, stop, user=stranger(fake))
    assert await private_reply(fake, refused) == f"⚠️ {NOT_YOURS}"
    assert first.custom_ids() == [stop]  # still streaming

    await fake.click(first.id, stop)
    await fake.wait_for(lambda: rated(first))
    text = first.content
    assert "\n\n_Stopped by Owner._" in text
    shown = text.split("\n\n_Stopped by")[0]
    assert shown and words.startswith(shown) and len(shown) < len(words)
    assert first.custom_ids()[-1].startswith("tw:retry:")

    bot.openai.script(Reply("Stopped at " + shown.split()[-1] + "."))
    await fake.message_create(thread, "where did you stop?")
    await fake.wait_for(lambda: len(bot.openai.chat_requests()) == 2)
    history = user_texts(bot.openai.chat_requests()[-1])
    assert (
        history[0] == "count slowly" and history[1].startswith(shown) and history[2] == "where did you stop?"
    )


async def test_retry_answers_again_and_replaces_the_answer_in_the_history(bot: Harness) -> None:
    fake = bot.discord
    thread, old = await ask(bot, "name a colour", Reply("Red."))
    answer = answer_of(old)

    refused = await fake.click(old.id, f"tw:retry:{answer}", user=stranger(fake))
    assert await private_reply(fake, refused) == f"⚠️ {NOT_YOURS}"
    assert len(bot.openai.chat_requests()) == 1

    bot.openai.script(Reply("Blue."))
    await fake.click(old.id, f"tw:retry:{answer}")
    new = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(thread) if m.content == "Blue." and rated(m)), None)
    )
    assert answer_of(new) != answer
    assert old.custom_ids() == []  # the replaced answer keeps its text, not its buttons
    assert old.content == "Red.\n\n_Retried: answered again below._"
    assert user_texts(bot.openai.chat_requests()[-1]) == ["name a colour"]

    bot.openai.script(Reply("Because."))
    await fake.message_create(thread, "why that one?")
    await fake.wait_for(lambda: len(bot.openai.chat_requests()) == 3)
    assert user_texts(bot.openai.chat_requests()[-1]) == ["name a colour", "Blue.", "why that one?"]

    # the earlier answer is not the last any more: Retry on it (forged back onto a message) is refused
    follow = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(thread) if m.content == "Because." and rated(m)), None)
    )
    fake.messages[follow.id].components[0]["components"].append(
        {"type": 2, "style": 2, "label": "Retry", "custom_id": f"tw:retry:{answer_of(new)}"}
    )
    late = await fake.click(follow.id, f"tw:retry:{answer_of(new)}")
    assert await private_reply(fake, late) == f"⚠️ {NOT_LAST}"
    assert len(bot.openai.chat_requests()) == 3


async def test_a_retry_that_fails_puts_the_old_answer_back_with_its_buttons(bot: Harness) -> None:
    fake = bot.discord
    thread, old = await ask(bot, "name a fruit", Reply("Pear."))
    row = old.custom_ids()
    bot.openai.script(Fault(500, message="the model is down"))
    await fake.click(old.id, f"tw:retry:{answer_of(old)}")
    await fake.wait_for(lambda: [m for m in fake.bot_messages(thread) if m.content.startswith("⚠️")])
    await fake.wait_for(lambda: old.custom_ids() == row)
    assert old.content == "Pear."

    bot.openai.script(Reply("Apple."))  # the old answer is the last one again: it can be retried
    await fake.click(old.id, f"tw:retry:{answer_of(old)}")
    await fake.wait_for(lambda: [m for m in fake.bot_messages(thread) if m.content == "Apple." and rated(m)])
    assert user_texts(bot.openai.chat_requests()[-1]) == ["name a fruit"]


async def test_two_retry_clicks_at_once_answer_the_question_once(bot: Harness) -> None:
    """The asker and an admin click Retry on the same answer at the same moment: one new answer; the other
    clicker is told privately that it is already being retried, and nothing else changes."""
    fake = bot.discord
    thread, old = await ask(bot, "name a colour", Reply("Red."))
    answer = answer_of(old)
    bot.openai.script(Reply("Blue."), Reply("Green."))

    clicks = await asyncio.gather(
        fake.click(old.id, f"tw:retry:{answer}"),
        fake.click(old.id, f"tw:retry:{answer}", user=stranger(fake), admin=True),
    )
    told = await fake.wait_for(lambda: [c for c in clicks if c.followup_ids])
    assert [await private_reply(fake, click) for click in told] == [f"⚠️ {RETRYING}"]
    new = await fake.wait_for(
        lambda: next((m for m in fake.bot_messages(thread) if m.content == "Blue." and rated(m)), None)
    )
    assert len(bot.openai.chat_requests()) == 2  # the question, and one retry
    assert [m.content for m in fake.bot_messages(thread) if m.id not in (old.id, new.id)] == []
    assert old.content == "Red.\n\n_Retried: answered again below._"

    bot.openai.script(Reply("Because."))
    await fake.message_create(thread, "why that one?")
    await fake.wait_for(lambda: len(bot.openai.chat_requests()) == 3)
    assert user_texts(bot.openai.chat_requests()[-1]) == ["name a colour", "Blue.", "why that one?"]


async def test_buttons_of_an_answer_sent_before_a_restart_still_work(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, FakeOpenAI(api_key="test-key") as openai:
        async with bot_on(fake, openai, tmp_path) as first:
            thread, message = await ask(first, "first question", Reply("First answer."))
        async with bot_on(fake, openai, tmp_path) as second:  # a new client and core, the same database
            answer = answer_of(message)
            vote = await fake.click(message.id, f"tw:fb:up:{answer}")
            assert await private_reply(fake, vote) == "Thanks for the feedback (👍)."
            assert [v[:2] for v in await votes(second)] == [(fake.owner["id"], 1)]

            openai.script(Reply("Second try."))
            await fake.click(message.id, f"tw:retry:{answer}")
            await fake.wait_for(
                lambda: [m for m in fake.bot_messages(thread) if m.content == "Second try." and rated(m)]
            )
            assert fake.connections == 2


async def test_an_ai_ask_answer_has_buttons_on_its_response(bot: Harness) -> None:
    fake = bot.discord
    bot.openai.script(Reply("Forty-two."))
    asked = await fake.interact("ai", "ask", {"prompt": "the answer?"})
    response = await fake.wait_for(
        lambda: (
            asked.original_id and rated(fake.messages[asked.original_id]) and fake.messages[asked.original_id]
        )
    )
    assert response.content.endswith("Forty-two.")
    vote = await fake.click(response.id, f"tw:fb:up:{answer_of(response)}")
    assert await private_reply(fake, vote) == "Thanks for the feedback (👍)."


async def test_forged_and_malformed_clicks_are_answered_and_the_gateway_stays_up(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = bot.discord
    _, message = await ask(bot, "hello", Reply("Hi there."))
    answer = answer_of(message)

    # a button the message does not carry, with a valid-looking id: answered, nothing stored
    click = await fake.click(message.id, f"tw:fb:up:{answer + 1}")
    assert await private_reply(fake, click) == f"⚠️ {STALE}"
    # ids the message does carry, forged into it: an unknown answer, a huge number, no template at all
    row = fake.messages[message.id].components[0]["components"]
    for forged in (f"tw:fb:up:{answer + 1000}", "tw:fb:up:99999999999999999999", "tw:fb:sideways:1", "evil"):
        row.append({"type": 2, "style": 2, "label": "x", "custom_id": forged})
        click = await fake.click(message.id, forged)
        told = await private_reply(fake, click)
        assert told.startswith("⚠️") and "Traceback" not in told
        row.pop()
    # malformed payloads: no custom id, a select menu, no message, components that are not buttons
    for damage in ("no custom id", "select", "no message", "odd components"):
        record, data = fake.click_data(message.id, f"tw:fb:up:{answer}")
        data = copy.deepcopy(data)
        if damage == "no custom id":
            del data["data"]["custom_id"]
        elif damage == "select":
            data["data"] = {"custom_id": f"tw:fb:up:{answer}", "component_type": 3, "values": ["x"]}
        elif damage == "no message":
            del data["message"]
        else:
            data["message"]["components"] = [{"type": 1, "components": [{"type": 99}]}]
        await fake.dispatch("INTERACTION_CREATE", data)
        assert "malformed" in await private_reply(fake, record)
    await fake.dispatch("INTERACTION_CREATE", {"type": 3, "data": {"custom_id": "x"}})  # not even answerable

    assert await votes(bot) == []
    ok = await fake.click(message.id, f"tw:fb:up:{answer}")
    assert await private_reply(fake, ok) == "Thanks for the feedback (👍)."
    assert fake.connections == 1
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text] == []


CLICK_FIELDS = [
    "id",
    "application_id",
    "type",
    "token",
    "version",
    "data",
    "guild_id",
    "channel_id",
    "channel",
]
CLICK_FIELDS += ["member", "user", "message", "app_permissions", "locale", "attachment_size_limit", "context"]
CLICK_DATA_FIELDS = ["custom_id", "component_type", "values"]
CLICKED_FIELDS = ["id", "channel_id", "author", "content", "components", "flags", "type", "timestamp"]
BUTTON_FIELDS = ["type", "style", "custom_id", "label", "emoji", "disabled"]


async def test_a_few_hundred_mutated_clicks_are_each_answered_or_ignored_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    generous = {"user_rate_limit": "10000/minute", "command_rate_limit": "10000/minute"}
    async with running_bot(tmp_path, limits=generous) as bot:
        fake = bot.discord
        _, message = await ask(bot, "hello", Reply("Hi there."))
        answer = answer_of(message)
        rng = random.Random(15)
        answerable: list[FakeInteraction] = []
        for _ in range(200):
            custom_id = rng.choice([f"tw:fb:up:{answer}", f"tw:fb:down:{answer}", f"tw:retry:{answer}"])
            record, shared = fake.click_data(message.id, custom_id, user=stranger(fake), admin=False)
            data = copy.deepcopy(shared)
            for _ in range(rng.randint(1, 3)):
                where = rng.random()
                clicked = data.get("message")
                if where < 0.4:
                    mutate(data, CLICK_FIELDS, rng)
                elif where < 0.6 and isinstance(data.get("data"), dict):
                    mutate(data["data"], CLICK_DATA_FIELDS, rng)
                elif where < 0.8 and isinstance(clicked, dict):
                    mutate(clicked, CLICKED_FIELDS, rng)
                elif isinstance(clicked, dict) and isinstance(clicked.get("components"), list):
                    rows = clicked["components"]
                    row = rows[0] if rows and isinstance(rows[0], dict) else None
                    buttons = row.get("components") if row else None
                    if isinstance(buttons, list) and buttons and isinstance(buttons[0], dict):
                        mutate(buttons[0], BUTTON_FIELDS, rng)
                    else:
                        clicked["components"] = copy.deepcopy(rng.choice(ODD))
            intact = {
                "id": str(record.id),
                "token": record.token,
                "application_id": str(fake.app_id),
                "type": 3,
            }
            if all(data.get(key) == value for key, value in intact.items()):
                answerable.append(record)
            await fake.dispatch("INTERACTION_CREATE", data)

        # every click Discord would take an answer to gets one (a refusal: none of them is the asker's)
        await fake.wait_for(lambda: all(r.callback_type is not None for r in answerable), within=60)
        assert await votes(bot) == []
        assert len(bot.openai.chat_requests()) == 1  # no Retry ran
        ok = await fake.click(message.id, f"tw:fb:up:{answer}")
        assert await private_reply(fake, ok) == "Thanks for the feedback (👍)."
        assert fake.connections == 1
        assert [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text] == []
        shown = [m.content for m in fake.messages.values() if m.author_id == fake.app_id]
        assert not [text for text in shown if "Traceback" in text or len(text) > 2000]
        assert [(c.method, c.route) for c in fake.calls if c.status == 400] == []


async def test_an_operator_from_threadwise_admins_may_stop_anyones_answer(tmp_path: Path) -> None:
    operator_id = 4242424242424242
    admins = {"admins": f"discord:{operator_id}"}
    async with running_bot(tmp_path, threadwise=admins) as bot:
        fake = bot.discord
        operator = fake.user(operator_id, "operator")  # no Manage Server
        bot.openai.script(Reply(" ".join(f"step{n}" for n in range(300)), chunk_chars=6, chunk_delay=0.05))
        thread = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> go on", mention_bot=True)
        first = await fake.wait_for(
            lambda: next((m for m in fake.bot_messages(thread) if m.custom_ids()), None)
        )
        await fake.click(first.id, first.custom_ids()[0], user=operator)
        await fake.wait_for(lambda: rated(first))
        assert "_Stopped by Operator._" in first.content


async def test_votes_show_in_the_admin_report_by_feedback(bot: Harness) -> None:
    fake = bot.discord
    _, first = await ask(bot, "one?", Reply("One."))
    _, second = await ask(bot, "two?", Reply("Two."))
    for message, vote in ((first, "up"), (second, "down")):
        click = await fake.click(message.id, f"tw:fb:{vote}:{answer_of(message)}")
        assert (await private_reply(fake, click)).startswith("Thanks")

    manager = stranger(fake)
    report = await fake.interact(
        "ai-admin", "report", {"args": "today by feedback"}, user=manager, admin=True
    )
    shown = await command_answer(bot, report)
    assert all(message.ephemeral for message in shown)
    assert "Feedback by model" in shown[0].content and "1 up, 1 down" in shown[0].content
    csv = next(data for message in shown for name, data in message.files if name.endswith(".csv"))
    assert csv.decode().splitlines() == ["model,up,down", "gpt-4o-mini,1,1"]
