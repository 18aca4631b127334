"""`/ai export` (a conversation's visible turns as Markdown, for whoever took part or an admin) on the
composed core, on Slack (files_upload_v2 into the caller's DM) and on Discord (an ephemeral discord.File),
`threadwise admin export USER` is tested from the shell in tests/e2e/test_safety_cli.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sqlalchemy import select

from bots.bootstrap import Core
from core.admin.export import PAGE, ConversationExports, UserExport
from core.db.models import AdminAction, UsageRecord
from core.db.session import Database
from core.domain.errors import NotAuthorized
from core.domain.types import Attachment as Upload
from core.domain.types import ChatUser, ConversationKey
from tests.fakes.openai_api import FakeOpenAI, Reply, png_bytes
from tests.integration.discord_harness import running_bot
from tests.integration.test_commands import ADA, ADMIN, KEY, OPERATOR, core, turn
from tests.integration.test_discord_commands import answer
from tests.integration.test_slack_adapter import running_slack
from tests.rendered import slack
from tests.support import RecordingReplier as Recording
from tests.support import incoming, key

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


async def test_exports_on_each_database_hold_one_users_data_and_a_conversations_visible_turns(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    """The export queries on SQLite and PostgreSQL: a shared thread, an image, more usage rows than one page,
    a transcript cut to a size."""
    from tests.integration.test_retention import service

    svc, llm = service(database, fake_openai)
    picture = (Upload("p.png", "image/png", png_bytes(8, 8)),)
    asks = incoming("ada asks", "e1", thread="shared", user_id="ADA", attachments=picture)
    await svc.handle(asks, Recording())
    await svc.handle(incoming("bob asks", "e2", thread="shared", user_id="BOB"), Recording())
    for n in range(3):
        await svc.handle(incoming(f"ada alone {n}", f"p{n}", thread="private", user_id="ADA"), Recording())
    await llm.close()
    async with database.unit_of_work() as session:  # more usage rows than one page of the export holds
        for _ in range(PAGE + 5):
            session.add(
                UsageRecord(
                    platform="console",
                    workspace_id="W1",
                    channel_id="C1",
                    user_id="ADA",
                    model="m",
                    kind="chat",
                )
            )

    export = UserExport(database, "console", "ADA")
    exported = json.loads("".join([chunk async for chunk in export.chunks()]))
    assert exported["user"] == "console:ADA"
    users = [m["content"][0]["text"] for m in exported["messages"] if m["role"] == "user"]
    assert users == ["ada asks", "ada alone 0", "ada alone 1", "ada alone 2"]
    assert len(exported["messages"]) == 8  # with the answers to them
    [image] = exported["messages"][0]["attachments"]
    assert base64.b64decode(image["data"]) == picture[0].data and image["name"] == "p.png"
    assert len(exported["usage"]) == 4 + PAGE + 5 and export.counts["usage"] == 4 + PAGE + 5
    assert len({u["id"] for u in exported["usage"]}) == 4 + PAGE + 5
    assert sorted(c["thread_id"] for c in exported["conversations"]) == ["private", "shared"]
    assert {e["user_id"] for e in exported["moderation_events"]} == {"ADA"}
    assert exported["bans"] == [] and exported["tool_calls"] == []

    exports = ConversationExports(database)
    transcript = await exports.transcript(key("shared"))
    assert transcript is not None and transcript.participants == {"ADA", "BOB"}
    asked = [t.text for t in transcript.turns if t.role == "user"]
    assert asked == ["ada asks\n\n[image: p.png]", "bob asks"]
    whole = await exports.transcript(key("private"))
    assert whole is not None and len(whole.turns) == 6 and whole.left_out == 0
    size = sum(len(t.text) for t in whole.turns[:3])
    cut = await exports.transcript(key("private"), max_chars=size)
    assert cut is not None and cut.turns == whole.turns[:3] and cut.left_out == 3
    assert await exports.transcript(key("nowhere")) is None
