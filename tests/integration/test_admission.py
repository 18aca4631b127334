"""Nothing is downloaded and no platform API is called for a user before the ban and rate-limit guards let
them through (DESIGN.md §3 step 1), on Slack and Discord, through the real SDKs against the wire fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.domain.types import ChatUser
from tests.fakes.openai_api import FakeOpenAI, Reply, png_bytes
from tests.fakes.slack_api import BOT_USER_ID
from tests.integration.discord_harness import running_bot
from tests.integration.test_slack_adapter import Slack, running_slack

OPERATOR = ChatUser("cli", "root", "root", is_admin=True)


async def ban(core: object, target: str) -> None:
    await core.admin.ban(OPERATOR, target, reason="spam", until=None)  # type: ignore[attr-defined]


def files_of(slack: Slack) -> list[dict[str, object]]:
    fake = slack.fake
    return [
        fake.add_file("a.png", png_bytes(8, 8), "image/png", "png"),
        fake.add_file("b.txt", b"some notes\n", "text/plain", "text"),
    ]


async def mention_in_thread_with_files(slack: Slack, user: str) -> str:
    """A mention with files in a thread people were talking in: would read users.info, the thread so far and
    download the files. Returns the thread's ts."""
    parent = slack.fake.message_event("Deploy failed on staging", user="U0BOB", record=True)
    await slack.message(
        f"<@{BOT_USER_ID}> look at this", user=user, thread_ts=parent["ts"], files=files_of(slack)
    )
    return str(parent["ts"])


async def test_a_banned_slack_user_is_refused_before_any_download_or_slack_call(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as slack:
        await ban(slack.core, "slack:U0ALICE")
        thread = await mention_in_thread_with_files(slack, "U0ALICE")

        (refusal,) = slack.fake.bot_messages(thread_ts=thread)
        assert "an admin has blocked you" in refusal.current
        assert slack.fake.downloads == []
        assert slack.fake.calls_of("users.info") == []
        assert slack.fake.calls_of("conversations.replies") == []
        assert fake_openai.chat_requests() == []


async def test_a_rate_limited_slack_user_is_refused_before_any_download_or_slack_call(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADWISE_USER_RATE_LIMIT", "1/minute")
    async with running_slack(tmp_path, fake_openai) as slack:
        fake_openai.script(Reply(text="Hello."))
        await slack.mention("hi", user="U0BOB")  # Bob is known (users.info) and has used his one message
        assert len(slack.fake.calls_of("users.info")) == 1
        thread = await mention_in_thread_with_files(slack, "U0BOB")

        (refusal,) = slack.fake.bot_messages(thread_ts=thread)
        assert "faster than allowed" in refusal.current
        assert slack.fake.downloads == []
        assert slack.fake.calls_of("conversations.replies") == []
        assert len(slack.fake.calls_of("users.info")) == 1
        assert len(fake_openai.chat_requests()) == 1


async def test_a_message_with_files_counts_once_against_the_rate_limit(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADWISE_USER_RATE_LIMIT", "2/minute")
    async with running_slack(tmp_path, fake_openai) as slack:
        fake_openai.script(Reply(text="One."), Reply(text="Two."))
        first = await slack.mention("first", files=files_of(slack))
        second = await slack.mention("second")
        assert slack.fake.bot_messages(thread_ts=first["ts"])[-1].current == "One."
        assert slack.fake.bot_messages(thread_ts=second["ts"])[-1].current == "Two."
        assert len(slack.fake.downloads) == 2


async def test_a_banned_discord_user_gets_no_attachment_downloaded(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        await ban(bot.core, f"discord:{fake.owner['id']}")
        dm = fake.dm_channel(fake.owner)
        await fake.message_create(dm, "what is this?", files=[("square.png", "image/png", png_bytes(16, 16))])
        (refusal,) = await fake.wait_for(lambda: fake.bot_messages(dm))
        assert "an admin has blocked you" in refusal.content
        assert fake.cdn_gets == []
        assert bot.openai.chat_requests() == []


async def test_a_rate_limited_discord_user_gets_no_attachment_downloaded(tmp_path: Path) -> None:
    async with running_bot(tmp_path, limits={"user_rate_limit": "1/minute"}) as bot:
        fake = bot.discord
        dm = fake.dm_channel(fake.owner)
        bot.openai.script(Reply("Hello."))
        await fake.message_create(dm, "hi", files=[("one.png", "image/png", png_bytes(16, 16))])
        await fake.wait_for(lambda: fake.bot_messages(dm))
        assert len(fake.cdn_gets) == 1  # counted once: admission and the turn are one hit
        await fake.message_create(dm, "again", files=[("two.png", "image/png", png_bytes(16, 16))])
        await fake.wait_for(lambda: len(fake.bot_messages(dm)) == 2)
        assert "faster than allowed" in fake.bot_messages(dm)[-1].content
        assert len(fake.cdn_gets) == 1


async def test_a_banned_users_assistant_thread_gets_no_title_and_no_lookup(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as slack:
        await ban(slack.core, "slack:U0ALICE")
        thread_ts = slack.fake.next_ts()
        await slack.message("Summarize our plan", channel="D0ALICE", channel_type="im", thread_ts=thread_ts)
        (refusal,) = slack.fake.bot_messages("D0ALICE", thread_ts=thread_ts)
        assert "an admin has blocked you" in refusal.current
        assert slack.fake.calls_of("assistant.threads.setTitle") == []
        assert slack.fake.calls_of("users.info") == []


# Files over the count or the declared size are skipped, with a note naming the file and the limit, before
# anything is downloaded (issue 13 item 4). These pin what already held when the issue was closed.


async def test_slack_files_over_the_count_or_size_are_named_and_never_downloaded(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADWISE_MAX_ATTACHMENTS", "2")
    monkeypatch.setenv("THREADWISE_MAX_ATTACHMENT_MB", "1")
    async with running_slack(tmp_path, fake_openai) as slack:
        fake = slack.fake
        files = [
            fake.add_file("big.png", png_bytes(8, 8) + bytes(1_600_000), "image/png", "png"),
            fake.add_file("a.txt", b"first notes\n", "text/plain", "text"),
            fake.add_file("b.txt", b"second notes\n", "text/plain", "text"),
        ]
        fake_openai.script(Reply(text="Read them."))
        event = await slack.mention("look", files=files)
        notice, answer = fake.bot_messages(thread_ts=event["ts"])
        assert "*big.png* (1.5 MB; files up to 1.0 MB are read)" in notice.current
        assert "*b.txt* (at most 2 files per message)" in notice.current
        assert [path.rsplit("/", 1)[1] for path, _ in fake.downloads] == ["a.txt"]
        assert answer.current == "Read them."


async def test_discord_files_over_the_count_or_size_are_named_and_never_downloaded(tmp_path: Path) -> None:
    async with running_bot(tmp_path, safety={"max_attachments": 1, "max_attachment_mb": 1}) as bot:
        fake = bot.discord
        dm = fake.dm_channel(fake.owner)
        bot.openai.script(Reply("Read it."))
        files = [
            ("big.png", "image/png", png_bytes(8, 8) + bytes(1_600_000)),
            ("a.txt", "text/plain", b"first notes\n"),
            ("b.txt", "text/plain", b"second notes\n"),
        ]
        await fake.message_create(dm, "look", files=files)
        (reply,) = await fake.wait_for(lambda: fake.bot_messages(dm))
        assert "I skipped big.png: it is 1.5 MB and files up to 1.0 MB are read." in reply.content
        assert "I skipped b.txt: at most 1 files are read per message." in reply.content
        assert [path.rsplit("/", 1)[1] for path in fake.cdn_gets] == ["a.txt"]
        assert reply.content.startswith("Read it.")
