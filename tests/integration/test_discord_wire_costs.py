"""REST calls per turn and edits per streamed reply, as the Discord fake sees them (reported in the issue's
closing note; the bounds here keep them from growing unnoticed)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from tests.fakes.discord_api import Call, FakeDiscord
from tests.fakes.openai_api import Reply
from tests.integration.discord_harness import EDIT_INTERVAL, running_bot

STREAMED = "\n\n".join(f"Paragraph {n}: " + "words that stream in slowly " * 3 for n in range(6))


def rated(fake: FakeDiscord, channel_id: int, text: str | None = None) -> bool:
    """An answer (``text``, when given) is complete in ``channel_id``: its 👍 / 👎 / Retry row is shown."""
    return any(
        any(custom_id.startswith("tw:fb:up:") for custom_id in m.custom_ids())
        and (text is None or text in m.content)
        for m in fake.bot_messages(channel_id)
    )


def summary(calls: list[Call]) -> Counter[str]:
    return Counter(f"{c.method} {c.route}" for c in calls)


async def turn_calls(fake: FakeDiscord, action: object, done: object) -> list[Call]:
    start = time.monotonic()
    await action()  # type: ignore[operator]
    await fake.wait_for(done)  # type: ignore[arg-type]
    return fake.calls_between(start)


async def test_rest_calls_per_turn_and_edits_per_streamed_reply(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        report: dict[str, Counter[str]] = {}

        bot.openai.script(Reply("Short answer."))
        chat = await fake.interact("ai", "chat", {"prompt": "start"})
        thread = await fake.wait_for(lambda: next(iter(fake.threads), None))
        await fake.wait_for(lambda: rated(fake, thread))
        report["/ai chat (new thread, short answer)"] = summary(fake.calls_between(chat.sent_at))

        bot.openai.script(Reply("Another short answer."))
        calls = await turn_calls(
            fake,
            lambda: fake.message_create(thread, "follow-up"),
            lambda: rated(fake, thread, "Another short answer."),
        )
        report["thread follow-up, short answer"] = summary(calls)
        # the answer, then its buttons: with the post when the answer is complete by then, else one edit
        # (Stop, shown while it streams, gives way to 👍 / 👎 / Retry)
        assert summary(calls) - Counter({"PATCH /channels/{id}/messages/{id}": 1}) == Counter(
            {"POST /channels/{id}/typing": 1, "POST /channels/{id}/messages": 1}
        )

        bot.openai.script(Reply(STREAMED, chunk_chars=8, chunk_delay=0.02))
        calls = await turn_calls(
            fake,
            lambda: fake.message_create(thread, "a long one"),
            lambda: rated(fake, thread, STREAMED),
        )
        report["thread follow-up, streamed answer"] = summary(calls)
        streamed = next(m for m in fake.bot_messages(thread) if m.content == STREAMED)
        patches = [c for c in calls if c.method == "PATCH"]
        seconds = patches[-1].at - calls[0].at if patches else 0.0
        # at most one edit per interval while streaming, plus the final one
        assert streamed.edits <= seconds / EDIT_INTERVAL + 2
        assert streamed.edits >= 1

        bot.openai.script(Reply("In place."))
        ask_start = time.monotonic()
        ask = await fake.interact("ai", "ask", {"prompt": "q"})
        await fake.wait_for(
            lambda: (
                ask.original_id
                and "In place." in fake.messages[ask.original_id].content
                and fake.messages[ask.original_id].custom_ids()
                and "tw:stop" not in fake.messages[ask.original_id].custom_ids()[0]
            )
        )
        report["/ai ask"] = summary(fake.calls_between(ask_start))

        bot.openai.script(Reply("Hi."))
        mention_start = time.monotonic()
        message_id = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> hi", mention_bot=True)
        await fake.wait_for(lambda: rated(fake, message_id))
        report["mention in a channel (opens a thread)"] = summary(fake.calls_between(mention_start))

        print()
        for name, counts in report.items():
            total = sum(counts.values())
            detail = ", ".join(f"{route} x{n}" for route, n in sorted(counts.items()))
            print(f"{name}: {total} REST calls ({detail})")
        print(f"streamed reply of {len(STREAMED)} characters: {streamed.edits} edits over {seconds:.2f} s")
        assert sum(report["/ai ask"].values()) <= 3
        # thread, typing, the answer, and at most one edit for its buttons
        assert sum(report["mention in a channel (opens a thread)"].values()) <= 4
