"""The Discord adapter as `threadwise serve` composes it (settings -> open_core -> open_discord), with the
real discord.py client talking to the Discord fake and the real openai SDK talking to the OpenAI fake."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bots.bootstrap import Core, open_core
from bots.discord.config import DiscordOptions
from bots.http import HttpServer
from core.settings import Settings, load_settings
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI

EDIT_INTERVAL = 0.2  # seconds; the adapter's default is 1.0 (Discord's edit limits), shortened for tests


@dataclass
class Harness:
    discord: FakeDiscord
    openai: FakeOpenAI
    core: Core


def settings_for(fake: FakeDiscord, openai: FakeOpenAI, tmp_path: Path, **groups: dict[str, Any]) -> Settings:
    return load_settings(
        None,
        openai={"api_key": "test-key", "base_url": openai.base_url},
        discord={
            "bot_token": fake.token,
            "api_url": fake.api_url,
            "gateway_url": fake.gateway_url,
            **groups.pop("discord", {}),
        },
        service={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
            "port": 0,
            **groups.pop("service", {}),
        },
        threadwise={"openai_max_retries": 0, **groups.pop("threadwise", {})},
        **groups,
    )


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    sharded: bool = False,
    token: str | None = None,
    modlog_in_general: bool = False,
    **groups: dict[str, Any],
) -> AsyncIterator[Harness]:
    async with FakeDiscord() as discord, FakeOpenAI(api_key="test-key") as openai:
        if token is not None:
            groups["discord"] = {"bot_token": token}
        if modlog_in_general:
            groups["threadwise"] = {
                **groups.get("threadwise", {}),
                "discord_modlog_channel": discord.channel_id,
            }
        async with bot_on(discord, openai, tmp_path, sharded=sharded, **groups) as harness:
            yield harness


@contextlib.asynccontextmanager
async def bot_on(
    fake: FakeDiscord,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    *,
    sharded: bool = False,
    **groups: dict[str, Any],
) -> AsyncIterator[Harness]:
    """A bot (a new client, a new core) on fakes that are already running, with the database in
    ``tmp_path`` (or ``service={"database_url": …}``): enter it twice in a row to restart the service."""
    from bots.discord.client import open_discord

    settings = settings_for(fake, fake_openai, tmp_path, **groups)
    options = dataclasses.replace(
        DiscordOptions.from_settings(settings), edit_interval=EDIT_INTERVAL, sharded=sharded
    )
    async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
        http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
        await stack.enter_async_context(open_discord(core.chat, options, http, guild_ready_timeout=0.05))
        await stack.enter_async_context(http)
        http.ready = True
        yield Harness(fake, fake_openai, core)
