"""Tool approval on Discord (issue 15, part 4): the real discord.py client against the Discord fake, the
OpenAI fake scripting a tool call; Approve / Deny are persistent dynamic buttons clicked as message component
interactions (type 3)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from core.db.models import ToolApproval
from core.tools.registry import Tool, ToolContext
from tests.fakes.discord_api import FakeDiscord, FakeMessage
from tests.fakes.openai_api import Reply, ToolCallSpec
from tests.integration.discord_harness import Harness, running_bot


class Lookup(BaseModel):
    query: str


def add_lookup(bot: Harness, runs: list[str]) -> None:
    async def lookup(args: Lookup, context: ToolContext) -> str:
        runs.append(args.query)
        return f"found: {args.query}"

    bot.core.tools.add(Tool("crm__lookup", "Look a customer up in the CRM.", Lookup, lookup))


def script(bot: Harness) -> None:
    bot.openai.script(
        Reply(tool_calls=[ToolCallSpec("crm__lookup", json.dumps({"query": "ada@example.com"}), id="c1")]),
        Reply(text="Here is what I know."),
    )


def custom_ids(message: FakeMessage) -> list[str]:
    return [button["custom_id"] for row in message.components for button in row.get("components", [])]


def asks(message: FakeMessage) -> bool:
    """An approval prompt (answers carry buttons too: Stop, 👍/👎, Retry)."""
    return any(custom.startswith("tw:approve:") for custom in custom_ids(message))


async def prompt(fake: FakeDiscord, thread: int) -> FakeMessage:
    def posted() -> FakeMessage | None:
        return next((m for m in fake.bot_messages(thread) if asks(m)), None)

    await fake.wait_for(posted)
    message = posted()
    assert message is not None
    return message


async def rows(bot: Harness) -> list[ToolApproval]:
    async with bot.core.database.reader() as session:
        return list((await session.execute(select(ToolApproval))).scalars())


def settings(**threadwise: Any) -> dict[str, Any]:
    return {"threadwise": {"approval_tools": "crm__*", **threadwise}}


async def test_the_asker_approves_with_a_button_and_someone_elses_click_is_refused(tmp_path: Path) -> None:
    runs: list[str] = []
    async with running_bot(tmp_path, **settings()) as bot:
        fake = bot.discord
        add_lookup(bot, runs)
        script(bot)
        thread = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> who is ada?", mention_bot=True)
        message = await prompt(fake, thread)
        # the name as Discord shows it (crm__lookup, not "crm" and an underlined "lookup")
        assert "**crm\\_\\_lookup**" in message.content and "[REDACTED:email]" in message.content
        assert "ada@example.com" not in message.content
        approve, deny = custom_ids(message)
        assert approve.startswith("tw:approve:") and deny.startswith("tw:deny:")
        await asyncio.sleep(1.0)
        assert runs == []

        mallory = fake.user(fake.snowflake(), "mallory")
        refused = await fake.click(message.id, approve, user=mallory)
        await fake.wait_for(lambda: refused.callback_type is not None)
        assert refused.callback_type == 4 and refused.ephemeral  # answered privately, in time
        answer = next(m for m in fake.messages.values() if m.interaction_id == refused.id)
        assert "only <@" in answer.content
        await asyncio.sleep(0.5)
        assert runs == [] and [row.status for row in await rows(bot)] == ["pending"]
        assert custom_ids(message) == [approve, deny]  # the buttons are still there

        clicked = await fake.click(message.id, approve, user=fake.owner)
        await fake.wait_for(
            lambda: any(m.content.startswith("Here is what I know.") for m in fake.bot_messages(thread))
        )
        assert clicked.callback_type == 7  # the message itself was updated
        assert runs == ["ada@example.com"]
        # Discord shows a bot's emoji codes as typed: the character itself, not ":white_check_mark:"
        assert message.content.startswith("\u2705 ") and "Approved by" in message.content
        assert message.components == []
        [row] = await rows(bot)
        assert (row.status, row.decided_by) == ("approved", fake.owner["id"])


async def test_a_denied_or_unanswered_call_does_not_run(tmp_path: Path) -> None:
    runs: list[str] = []
    async with running_bot(tmp_path, **settings(approval_timeout=1)) as bot:
        fake = bot.discord
        add_lookup(bot, runs)
        script(bot)
        thread = await fake.message_create(fake.channel_id, f"<@{fake.app_id}> who is ada?", mention_bot=True)
        message = await prompt(fake, thread)
        await fake.wait_for(
            lambda: any(m.content.startswith("Here is what I know.") for m in fake.bot_messages(thread))
        )
        assert runs == []
        assert "Not approved within 1 s" in message.content and message.components == []
        tool = [m for m in bot.openai.chat_requests()[1]["messages"] if m["role"] == "tool"]
        assert json.loads(tool[0]["content"])["kind"] == "unapproved"

        script(bot)
        await fake.message_create(thread, "try again")
        await fake.wait_for(lambda: any(asks(m) for m in fake.bot_messages(thread)))
        second = next(m for m in fake.bot_messages(thread) if asks(m))  # the first one was closed
        _, deny = custom_ids(second)
        await fake.click(second.id, deny, user=fake.owner)
        await fake.wait_for(lambda: len(bot.openai.chat_requests()) == 4)
        assert runs == []
        assert "Denied by" in second.content
        tool = [m for m in bot.openai.chat_requests()[3]["messages"] if m["role"] == "tool"]
        assert json.loads(tool[-1]["content"])["kind"] == "denied"
