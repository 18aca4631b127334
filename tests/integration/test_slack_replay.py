"""Slash commands over Slack HTTP (issue 13 item 8): a replayed signed request has no second effect, and a
user's commands are rate limited before they cost anything (a platform call, an audit row)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from core.db.models import AdminAction
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.integration.test_slack_adapter import Slack, running_slack

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def slack(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Slack]:
    monkeypatch.setenv("THREADWISE_COMMAND_RATE_LIMIT", "5/minute")
    async with running_slack(tmp_path, fake_openai) as running:
        yield running


async def refusals(slack: Slack) -> int:
    async with slack.core.database.reader() as session:
        query = select(func.count()).select_from(AdminAction).where(AdminAction.allowed.is_(False))
        return int((await session.execute(query)).scalar_one())


async def test_the_same_signed_ask_three_times_posts_one_question(slack: Slack) -> None:
    slack.openai.script(Reply(text="the answer"), Reply(text="a second answer"))
    body = urlencode(slack.fake.command_payload("/ai", "ask what is a replay?"))
    stamp = int(time.time())
    for _ in range(3):
        assert (await slack.sender.send(body, FORM, timestamp=stamp)).status == 200
        await slack.background.idle()

    questions = [m for m in slack.fake.bot_messages("C0GENERAL") if "asked" in m.current]
    assert len(questions) == 1
    assert len(slack.openai.chat_requests()) == 1
    [answer] = slack.fake.bot_messages("C0GENERAL", thread_ts=questions[0].ts)
    assert answer.current == "the answer"


async def test_a_burst_of_admin_commands_is_rate_limited_and_stops_writing_audit_rows(slack: Slack) -> None:
    for _ in range(5):
        await slack.command("/ai-admin", "report")
    assert await refusals(slack) == 5
    assert all("Only admins" in r["text"] for r in slack.fake.responses)
    for _ in range(10):
        await slack.command("/ai-admin", "report")

    assert await refusals(slack) == 5  # no more rows: refused before the admin check
    limited = slack.fake.responses[5:]
    assert len(limited) == 10
    assert all("sending commands faster than allowed" in r["text"] for r in limited)
    await slack.command("/ai-admin", "report", user="U0BOB")  # someone else is not limited
    assert await refusals(slack) == 6
