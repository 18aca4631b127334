"""`/ai export` (a conversation's visible turns as Markdown, for whoever took part or an admin) on the
composed core, on Slack (files_upload_v2 into the caller's DM) and on Discord (an ephemeral discord.File),
`threadwise admin export USER` is tested from the shell in tests/e2e/test_safety_cli.py."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bots.bootstrap import Core
from core.db.models import AdminAction
from core.domain.errors import NotAuthorized
from core.domain.types import ChatUser, ConversationKey
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.integration.discord_harness import running_bot
from tests.integration.test_commands import ADA, ADMIN, KEY, OPERATOR, core, turn
from tests.integration.test_discord_commands import answer
from tests.integration.test_slack_adapter import running_slack
from tests.rendered import slack

__all__ = ["core"]  # the fixture, shared with test_commands

BOB = ChatUser("slack", "U0BOB", "bob")


async def test_export_holds_the_visible_turns_as_markdown(core: Core, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(text="Hello Ada."), Reply(text="Blue, you said."))
    await turn(core, "my name is Ada", "e1")
    await slack(core).reset(ADA, KEY)  # hidden from later turns: left out of the export too
    await turn(core, "my favourite colour is blue; what is it?", "e2")

    reply = await slack(core).export(ADA, KEY)
    assert not reply.public
    [file] = reply.attachments
    assert file.name == "conversation-C1-1700000000-000100.md" and file.mime == "text/markdown"
    markdown = file.data.decode("utf-8")
    assert markdown.startswith("# Conversation export\n")
    assert "- Where: slack, workspace `T1`, channel `C1`, thread `1700000000.000100`" in markdown
    assert "**`U0ADA`** · " in markdown and "**Assistant** (`gpt-4o-mini`) · " in markdown
    assert "my favourite colour is blue; what is it?" in markdown and "Blue, you said." in markdown
    assert "my name is Ada" not in markdown and "Hello Ada." not in markdown
    assert markdown.index("my favourite colour") < markdown.index("Blue, you said.")
    assert reply.text == f"Here is this conversation, 2 messages: `{file.name}`."


async def test_only_participants_or_admins_may_export(core: Core, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(text="Noted."))
    await turn(core, "the launch code is 1234", "e1")
    try:
        await slack(core).export(BOB, KEY)
    except NotAuthorized as refused:
        assert "took part in this conversation" in refused.user_message
    else:
        raise AssertionError("someone who took no part exported the conversation")
    for admin in (ADMIN, OPERATOR):
        [file] = (await slack(core).export(admin, KEY)).attachments
        assert "the launch code is 1234" in file.data.decode()
    async with core.database.reader() as session:
        audited = (await session.execute(select(AdminAction).where(AdminAction.action == "export"))).scalars()
        assert sorted(a.actor_id for a in audited) == ["U0BOSS", "U0OPS"]  # an admin's look is recorded
    nothing = await slack(core).export(ADA, ConversationKey("slack", "T1", "C1", "9.9"))
    assert nothing.text == "There is no conversation here to export yet."
    assert nothing.attachments == ()


async def test_slack_ai_export_uploads_the_markdown_to_the_callers_dm(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with running_slack(tmp_path, fake_openai) as running:
        fake_openai.script(Reply(text="Lisbon is lovely in May."))
        await running.mention("where should we go in May?")
        await running.command("/ai", "export", user="U0ALICE")

        [upload] = running.fake.uploads.values()
        assert upload.channel == "D0ALICE" and upload.filename.endswith(".md")  # the caller's DM
        markdown = (upload.data or b"").decode()
        assert "where should we go in May?" in markdown and "Lisbon is lovely in May." in markdown
        [response] = running.fake.responses
        assert response["response_type"] == "ephemeral"
        assert f"Sent `{upload.filename}` to you in a direct message." in response["text"]


async def test_discord_ai_export_answers_with_a_private_file_for_participants_only(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        bot.openai.script(Reply("Start with the README."))
        await fake.interact("ai", "chat", {"prompt": "How do I start on this repo?"})
        thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
        await fake.wait_for(lambda: [m for m in fake.bot_messages(thread_id) if "README" in m.content])

        [shown] = await answer(bot, await fake.interact("ai", "export", channel_id=thread_id))
        assert shown.ephemeral
        [(name, data)] = shown.files
        assert name.endswith(".md")
        assert "How do I start on this repo?" in data.decode() and "Start with the README." in data.decode()

        stranger = fake.user(fake.snowflake(), "stranger")
        [refused] = await answer(
            bot, await fake.interact("ai", "export", channel_id=thread_id, user=stranger)
        )
        assert refused.ephemeral and refused.files == []
        assert "took part in this conversation" in refused.content
