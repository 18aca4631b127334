"""Several processes split Discord's gateway shards (THREADWISE_DISCORD_SHARD_IDS / _SHARD_COUNT): each
identifies with its own shards, Discord sends a guild's events to the process running that guild's shard, and
that process alone answers."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

from bots.bootstrap import open_core
from bots.discord.client import open_discord
from bots.discord.config import DiscordOptions
from bots.http import HttpServer
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.integration.discord_harness import EDIT_INTERVAL, settings_for


@contextlib.asynccontextmanager
async def replica(
    fake: FakeDiscord, openai: FakeOpenAI, tmp_path: Path, shard_ids: str, count: int
) -> AsyncIterator[None]:
    """One `threadwise serve` process as bootstrap composes it, serving ``shard_ids`` of ``count`` shards."""
    settings = settings_for(
        fake,
        openai,
        tmp_path,
        threadwise={
            "discord_shard_ids": shard_ids,
            "discord_shard_count": count,
            "system_prompt": f"You are the replica of shards {shard_ids}.",
        },
    )
    options = dataclasses.replace(DiscordOptions.from_settings(settings), edit_interval=EDIT_INTERVAL)
    async with open_core(settings) as core:
        http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
        async with open_discord(core.chat, options, http, guild_ready_timeout=0.05):
            yield


def system_prompt(request: dict[str, object]) -> str:
    messages = request["messages"]
    assert isinstance(messages, list)
    return str(messages[0]["content"])


async def test_two_processes_split_the_shards_and_the_guilds_shard_answers(tmp_path: Path) -> None:
    async with (
        FakeDiscord() as fake,
        FakeOpenAI(api_key="test-key") as openai,
        replica(fake, openai, tmp_path, "0", 2),
        replica(fake, openai, tmp_path, "1", 2),
    ):
        assert sorted(tuple(payload["shard"]) for payload in fake.identify_payloads) == [(0, 2), (1, 2)]
        owner = (fake.guild_id >> 22) % 2  # Discord's rule: the guild's events go to this shard only

        openai.script(Reply("Answered once."))
        message_id = await fake.message_create(
            fake.channel_id, f"<@{fake.app_id}> which shard?", mention_bot=True
        )
        await fake.wait_for(lambda: fake.bot_messages(message_id))
        assert [m.content for m in fake.bot_messages(message_id)] == ["Answered once."]
        [request] = openai.chat_requests()
        assert system_prompt(request) == f"You are the replica of shards {owner}."

        dm = fake.dm_channel(fake.owner)  # direct messages belong to shard 0
        openai.script(Reply("From shard zero."))
        await fake.message_create(dm, "hello")
        await fake.wait_for(lambda: fake.bot_messages(dm))
        assert system_prompt(openai.chat_requests()[-1]) == "You are the replica of shards 0."
