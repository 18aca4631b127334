"""`threadwise serve` as an operator runs it for Slack in HTTP mode: a real subprocess, configured only by
environment variables, answering a signed mention from the Slack fake with the OpenAI fake behind it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import aiohttp

from tests.e2e.conftest import command, openai_env, token_tables_env
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import BOT_TOKEN, BOT_USER_ID, SIGNING_SECRET, EventSender, FakeSlack


async def _port(process: asyncio.subprocess.Process, seen: list[str]) -> int:
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line, "serve exited before listening:\n" + "".join(seen)
        seen.append(line)
        found = re.search(r"HTTP listening on [^:]+:(\d+)", line)
        if found:
            return int(found.group(1))


async def _drain(process: asyncio.subprocess.Process, seen: list[str]) -> None:
    """Keeps reading the log so the child never blocks on a full pipe."""
    assert process.stderr is not None
    while line := await process.stderr.readline():
        seen.append(line.decode())


async def test_serve_answers_a_slack_mention_over_http(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            **token_tables_env(),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
            "PORT": "0",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            **openai_env(fake_openai),
        }
        process = await asyncio.create_subprocess_exec(
            *command(), "serve", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
        )
        seen: list[str] = []
        try:
            port = await _port(process, seen)
            drain = asyncio.create_task(_drain(process, seen))
            base = f"http://127.0.0.1:{port}"
            async with session.get(f"{base}/healthz") as health:
                assert health.status == 200

            fake_openai.script(Reply(text="Hello from **serve**"))
            event = fake.message_event(f"<@{BOT_USER_ID}> hello", mention=True)
            sender = EventSender(f"{base}/slack/events", session)
            delivery = await sender.event(fake.envelope(event))
            assert delivery.status == 200
            await fake.wait_for(lambda: any(m.current == "Hello from *serve*" for m in fake.bot_messages()))
            assert (await sender.event(fake.envelope(event), secret="forged")).status == 401
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
        await drain
        assert code == 0, "".join(seen)
        assert "Traceback" not in "".join(seen)
        [reply] = fake.bot_messages("C0GENERAL", thread_ts=event["ts"])
        assert reply.text.startswith(":hourglass")

        # Off a terminal every log line is a JSON object; a normal start warns about nothing; the turn ends
        # with one line of its context and cost, and no line holds the message or the user's id.
        lines = [json.loads(line) for line in seen]
        assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
        assert [line["message"] for line in lines if line["level"] in ("WARNING", "ERROR")] == []
        [turn] = [line for line in lines if "outcome" in line]
        assert turn["outcome"] == "answered" and turn["platform"] == "slack"
        assert turn["event_id"] and turn["conversation_id"] and turn["model"]
        assert turn["duration_ms"] >= 0 and turn["prompt_tokens"] > 0 and turn["completion_tokens"] > 0
        assert turn["cost_usd"] > 0 and turn["user"] != "U0ALICE"
        assert not any("hello" in raw or "U0ALICE" in raw for raw in seen)
