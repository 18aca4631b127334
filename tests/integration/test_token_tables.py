"""`threadwise serve` loads the token tables of every model it is configured with before it reports ready.

tiktoken builds an encoding's native tables holding the interpreter (a tenth of a second on an idle core, up
to a second under load): built in a turn, every other user's events wait meanwhile. So a user who gets a
model with another encoding (gpt-4: cl100k_base, where the default gpt-4o-mini uses o200k_base; here chosen by
THREADWISE_ROUTER for a longer message) gets a turn that loads nothing, and a service configured with one
encoding holds only that one.

`serving` runs as `threadwise serve` runs it (Slack over HTTP, SQLite), against the Slack and OpenAI fakes;
the counter logs each encoding it loads, which tells when it happened.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from bots.bootstrap import serving
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import BOT_USER_ID, EventSender, FakeSlack, PostedMessage
from tests.integration.test_slack_adapter import settings_for


def tables_loaded(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The encodings the service's counter loaded so far, in order (from its log)."""
    return [
        str(record.args[0])
        for record in caplog.records
        if record.name == "core.llm.tokens" and record.msg.startswith("token tables of") and record.args
    ]


async def answered(fake: FakeSlack, thread_ts: str, text: str) -> PostedMessage:
    for _ in range(1_000):
        for message in fake.bot_messages(thread_ts=thread_ts):
            if message.current == text:
                return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"no answer {text!r} in {thread_ts}: {fake.bot_messages(thread_ts=thread_ts)}")


async def test_a_turn_on_another_models_encoding_loads_no_tables_after_ready(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="core.llm.tokens")
    fake_openai.script(Reply(text="Hello from the small model."), Reply(text="Hello from gpt-4."))
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        fake.add_user("U0BOB", "bob")
        # THREADWISE_ROUTER: short messages to gpt-4o-mini, longer ones (over 40 characters) to gpt-4
        settings = settings_for(
            tmp_path, fake_openai, fake, router="gpt-4o-mini,gpt-4", router_long_chars="40"
        )
        async with serving(settings, ["slack"]) as http, aiohttp.ClientSession() as session:
            assert tables_loaded(caplog) == ["o200k_base", "cl100k_base"]  # both, before ready
            sender = EventSender(f"http://127.0.0.1:{http.port}/slack/events", session)
            mention = fake.message_event(f"<@{BOT_USER_ID}> hello", mention=True)
            assert (await sender.event(fake.envelope(mention))).status == 200
            await answered(fake, mention["ts"], "Hello from the small model.")
            long = "and now, please, a longer question that goes to the strong model?"
            other = fake.message_event(f"<@{BOT_USER_ID}> {long}", mention=True, user="U0BOB")
            assert (await sender.event(fake.envelope(other))).status == 200
            await answered(fake, other["ts"], "Hello from gpt-4.")
        assert [body["model"] for body in fake_openai.chat_requests()] == ["gpt-4o-mini", "gpt-4"]
        assert tables_loaded(caplog) == ["o200k_base", "cl100k_base"]  # nothing loaded in either turn


async def test_a_service_with_one_encoding_loads_only_that_one(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """gpt-4o-mini, gpt-4.1 and a model tiktoken does not know all count with o200k_base: ~50 MB, once."""
    caplog.set_level(logging.INFO, logger="core.llm.tokens")
    async with FakeSlack() as fake:
        settings = settings_for(
            tmp_path, fake_openai, fake, models="gpt-4o-mini,gpt-4.1,acme-large", router="gpt-4o-mini,gpt-4.1"
        )
        async with serving(settings, ["slack"]):
            assert tables_loaded(caplog) == ["o200k_base"]
