"""`threadwise serve` as an operator runs it for Discord: a real subprocess, configured only by environment
variables, connecting to the Discord fake's gateway, registering its commands and answering `/ai chat` in a
new thread, with the OpenAI fake behind it; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.e2e.conftest import command, openai_env, token_tables_env
from tests.e2e.test_slack_serve import _port
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI, Reply


async def test_serve_holds_a_discord_conversation_in_a_thread(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            **token_tables_env(),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
            "PORT": "0",
            "DISCORD_BOT_TOKEN": fake.token,
            "DISCORD_API_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "THREADWISE_DISCORD_GUILDS": str(fake.guild_id),
            **openai_env(fake_openai),
        }
        process = await asyncio.create_subprocess_exec(
            *command(), "serve", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        seen: list[str] = []
        try:
            port = await _port(process, seen)  # logged once every adapter is up
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200
            assert {c["name"] for c in fake.commands[str(fake.guild_id)]} == {
                "ai",
                "ai-admin",
                "Ask Threadwise",
            }
            assert "global" not in fake.commands  # THREADWISE_DISCORD_GUILDS: registered per guild only

            fake_openai.script(Reply("Hello from **serve**"), Reply("Still here."))
            await fake.interact("ai", "chat", {"prompt": "hello"})
            thread = await fake.wait_for(lambda: next(iter(fake.threads), None))
            await fake.wait_for(
                lambda: [m for m in fake.bot_messages(thread) if m.content == "Hello from **serve**"]
            )
            await fake.message_create(thread, "are you there?")
            await fake.wait_for(lambda: [m for m in fake.bot_messages(thread) if m.content == "Still here."])
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0, "".join(seen)
        history = fake_openai.chat_requests()[-1]["messages"]
        assert [m["role"] for m in history] == ["system", "user", "assistant", "user"]
