"""Crash recovery on Discord (issue 12): where a streamed reply is gets recorded while it streams, and a turn
left by a stopped replica is shown as interrupted, in its reply or in its conversation, through the real
discord.py client against the Discord fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.discord.identity import dm_key
from core.db.models import ProcessedEvent
from core.domain.errors import INTERRUPTED_MESSAGE
from core.domain.types import ChatUser, IncomingMessage
from core.turn.store import SqlTurnStore
from tests.fakes.openai_api import Reply
from tests.integration.discord_harness import Harness, running_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as harness:
        yield harness


async def reply_of(bot: Harness, message_id: int) -> dict[str, str] | None:
    async with bot.core.database.reader() as session:
        return await session.scalar(
            select(ProcessedEvent.reply).where(ProcessedEvent.event_id.contains(str(message_id)))
        )


async def test_a_streaming_reply_records_where_it_is(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    paragraphs = "\n\n".join(f"Paragraph {i} of a slow and careful answer." for i in range(8))
    bot.openai.script(Reply(paragraphs, chunk_chars=8, chunk_delay=0.04))  # each shown once moderated
    asked = await fake.message_create(dm, "tell me slowly")
    posted = await fake.wait_for(lambda: fake.bot_messages(dm))
    recorded = None
    for _ in range(500):  # the write runs beside the stream, which goes on for a second
        recorded = await reply_of(bot, asked)
        if recorded is not None:
            break
        await asyncio.sleep(0.01)
    assert recorded == {"channel": str(dm), "message": str(posted[0].id)}


def dead_turn(channel: int, event_id: str) -> IncomingMessage:
    return IncomingMessage(
        key=dm_key(channel),
        user=ChatUser("discord", "42", "someone"),
        text="question",
        event_id=event_id,
        received_at=datetime.now(UTC),
    )


async def test_a_dead_replicas_reply_says_it_was_interrupted(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    bot.openai.script(Reply("Half an answ"))
    await fake.message_create(dm, "hi")
    [message] = await fake.wait_for(lambda: fake.bot_messages(dm))

    dead = SqlTurnStore(bot.core.database, owner="dead-replica")
    stuck = dead_turn(dm, "discord:dead-1")
    assert await dead.claim(stuck) is not None
    await dead.locate(stuck, {"channel": str(dm), "message": str(message.id)})
    assert await bot.core.recovery.sweep() == 1
    await fake.wait_for(lambda: message.content.startswith("⚠️"))
    assert message.content == f"⚠️ {INTERRUPTED_MESSAGE}"
    assert message.custom_ids() == []  # no button of the interrupted answer (a Stop would stop nothing)


async def test_a_dead_replicas_turn_with_nothing_posted_is_resolved_in_the_conversation(bot: Harness) -> None:
    fake = bot.discord
    dm = fake.dm_channel(fake.owner)
    dead = SqlTurnStore(bot.core.database, owner="dead-replica")
    assert await dead.claim(dead_turn(dm, "discord:dead-2")) is not None
    assert await bot.core.recovery.sweep() == 1
    [notice] = await fake.wait_for(lambda: fake.bot_messages(dm))
    assert notice.content == f"⚠️ {INTERRUPTED_MESSAGE}"
