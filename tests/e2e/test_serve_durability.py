"""`threadwise serve` (Slack HTTP mode) stopped mid-answer, as operators stop it: SIGKILL then a restart
leaves no thread showing "Thinking…" or half an answer, and the thread goes on; SIGTERM lets the answer
being streamed finish before the process exits 0 (issue 12)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.e2e.conftest import command, openai_env
from tests.e2e.test_slack_serve import _drain, _port
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import BOT_TOKEN, BOT_USER_ID, SIGNING_SECRET, EventSender, FakeSlack

LONG_ANSWER = " ".join(f"word{i}" for i in range(60))


def serve_env(tmp_path: Path, fake: FakeSlack, fake_openai: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TIKTOKEN_CACHE_DIR": os.environ["TIKTOKEN_CACHE_DIR"],
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "PORT": "0",
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        **openai_env(fake_openai),
        **extra,
    }


class Serve:
    def __init__(self, process: asyncio.subprocess.Process, base: str, log: list[str]) -> None:
        self.process = process
        self.base = base
        self.log = log


@asynccontextmanager
async def serving(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[Serve]:
    process = await asyncio.create_subprocess_exec(
        *command(), "serve", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    seen: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        port = await _port(process, seen)
        drain = asyncio.create_task(_drain(process, seen))
        yield Serve(process, f"http://127.0.0.1:{port}", seen)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        if drain is not None:
            await drain


async def test_sigkill_mid_stream_then_restart_resolves_the_thread(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        env = serve_env(tmp_path, fake, fake_openai)
        fake_openai.script(Reply(text=LONG_ANSWER, chunk_chars=6, chunk_delay=0.3))
        question = fake.message_event(f"<@{BOT_USER_ID}> tell me a long story", mention=True)
        async with serving(tmp_path, env) as first:
            sender = EventSender(f"{first.base}/slack/events", session)
            assert (await sender.event(fake.envelope(question))).status == 200
            await fake.wait_for(  # half an answer is showing
                lambda: any(m.current.startswith("word0") for m in fake.bot_messages()), seconds=30
            )
            first.process.kill()
            assert await first.process.wait() == -signal.SIGKILL
        [reply] = fake.bot_messages("C0GENERAL", thread_ts=question["ts"])
        assert "interrupted" not in reply.current  # nothing resolved it yet: the process was killed

        async with serving(tmp_path, env) as second:
            await fake.wait_for(lambda: "interrupted" in reply.current, seconds=60)
            assert reply.current.startswith(":warning:")
            assert "Please ask again" in reply.current

            fake_openai.script(Reply(text="Here is a short one."))
            follow_up = fake.message_event(
                f"<@{BOT_USER_ID}> a short one then", thread_ts=question["ts"], mention=True
            )
            sender = EventSender(f"{second.base}/slack/events", session)
            assert (await sender.event(fake.envelope(follow_up))).status == 200
            await fake.wait_for(
                lambda: any(m.current == "Here is a short one." for m in fake.bot_messages()), seconds=30
            )
            second.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.process.wait(), 30) == 0
        assert "Traceback" not in "".join(second.log)


async def test_sigterm_mid_stream_finishes_the_answer_then_exits_0(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        env = serve_env(tmp_path, fake, fake_openai, THREADWISE_DRAIN_SECONDS="30")
        fake_openai.script(Reply(text=LONG_ANSWER, chunk_chars=12, chunk_delay=0.15))
        question = fake.message_event(f"<@{BOT_USER_ID}> tell me a story", mention=True)
        async with serving(tmp_path, env) as serve:
            sender = EventSender(f"{serve.base}/slack/events", session)
            assert (await sender.event(fake.envelope(question))).status == 200
            await fake.wait_for(
                lambda: any(m.current.startswith("word0") for m in fake.bot_messages()), seconds=30
            )
            serve.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(serve.process.wait(), 60) == 0
        [reply] = fake.bot_messages("C0GENERAL", thread_ts=question["ts"])
        assert reply.current == LONG_ANSWER
        assert "Traceback" not in "".join(serve.log)
