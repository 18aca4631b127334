"""Tool approval on Discord (issue 15, part 4): the real discord.py client against the Discord fake, the
OpenAI fake scripting a tool call; Approve / Deny are persistent dynamic buttons clicked as message component
interactions (type 3)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from bots.discord.replier import InteractionSink
from core.db.models import ToolApproval
from core.tools.registry import Tool, ToolContext
from tests.fakes.discord_api import FakeDiscord, FakeInteraction, FakeMessage
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


def prompts_of(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in fake.messages.values() if asks(m)]


def responses(fake: FakeDiscord, interaction: FakeInteraction) -> list[FakeMessage]:
    """The command's response, once it has one."""
    return [fake.messages[interaction.original_id]] if interaction.original_id else []


async def test_an_ai_ask_approval_is_asked_of_the_asker_alone(tmp_path: Path) -> None:
    """`/ai ask` answers in the command's own response: its approval request is an ephemeral follow-up of
    that command, which only the asker (who decides) sees; nothing is posted in the channel."""
    runs: list[str] = []
    async with running_bot(tmp_path, **settings()) as bot:
        fake = bot.discord
        add_lookup(bot, runs)
        script(bot)
        asked = await fake.interact("ai", "ask", {"prompt": "who is ada?"})
        [message] = await fake.wait_for(lambda: prompts_of(fake))
        assert message.ephemeral and message.interaction_id == asked.id and message.id != asked.original_id
        assert not any(asks(m) for m in fake.bot_messages(fake.channel_id))
        assert "**crm\\_\\_lookup**" in message.content and "[REDACTED:email]" in message.content

        approve, _ = custom_ids(message)
        clicked = await fake.click(message.id, approve, user=fake.owner)
        await fake.wait_for(
            lambda: any(m.content.endswith("Here is what I know.") for m in responses(fake, asked))
        )
        assert runs == ["ada@example.com"]
        assert clicked.callback_type == 7  # the private prompt itself now says it was approved
        assert "Approved by" in message.content and message.components == []
        assert fake.messages[asked.original_id or 0].content == "> who is ada?\nHere is what I know."
        assert not fake.messages[asked.original_id or 0].ephemeral  # the answer is public, as before


async def test_an_ai_ask_approval_not_given_in_time_is_closed_privately(tmp_path: Path) -> None:
    runs: list[str] = []
    async with running_bot(tmp_path, **settings(approval_timeout=1)) as bot:
        fake = bot.discord
        add_lookup(bot, runs)
        script(bot)
        asked = await fake.interact("ai", "ask", {"prompt": "who is ada?"})
        [message] = await fake.wait_for(lambda: prompts_of(fake))
        await fake.wait_for(
            lambda: any(m.content.endswith("Here is what I know.") for m in responses(fake, asked))
        )
        assert message.ephemeral and runs == []
        assert "Not approved within 1 s" in message.content and message.components == []


async def test_an_ai_ask_still_thinking_when_its_approval_is_asked_keeps_the_prompt_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first follow-up of a deferred response takes the place of its "thinking…", publicly: when the
    answer's first edit has not landed yet as the approval is asked, the response first says it waits."""
    runs: list[str] = []
    async with running_bot(tmp_path, **settings()) as bot:
        fake = bot.discord
        add_lookup(bot, runs)
        script(bot)
        send = InteractionSink.send
        late: list[bool] = []

        async def late_first(self: InteractionSink, *args: Any, **kwargs: Any) -> Any:
            if not late:  # the answer's first edit ("Using crm__lookup…") is behind the approval request
                late.append(True)
                await asyncio.sleep(1.0)
            return await send(self, *args, **kwargs)

        monkeypatch.setattr(InteractionSink, "send", late_first)
        asked = await fake.interact("ai", "ask", {"prompt": "who is ada?"})
        [message] = await fake.wait_for(lambda: prompts_of(fake))
        assert message.ephemeral and message.id != asked.original_id
        original = fake.messages[asked.original_id or 0]
        assert not original.ephemeral and not asks(original)
        approve, _ = custom_ids(message)
        await fake.click(message.id, approve, user=fake.owner)
        await fake.wait_for(lambda: original.content == "> who is ada?\nHere is what I know.")
        assert runs == ["ada@example.com"]
