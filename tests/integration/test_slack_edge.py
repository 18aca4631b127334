"""POST /slack/events at its edge (issue 13 item 2): the size and the signature are checked on the raw bytes
before anything parses the body; refused requests get 401/413, never a 5xx, and their bodies reach no log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.slack.verify import MAX_BODY_BYTES
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import BOT_USER_ID, sign
from tests.integration.test_slack_adapter import Slack, running_slack


@pytest.fixture
async def slack(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Slack]:
    async with running_slack(tmp_path, fake_openai) as running:
        yield running


async def post(slack: Slack, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    session = slack.sender._session
    async with session.post(slack.sender.url, data=body, headers=headers) as response:
        return response.status, await response.text()


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {record.exc_info or ''}" for record in caplog.records
    )


async def test_unsigned_garbage_is_refused_unparsed_and_never_logged(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "SECRET-GARBAGE-7f3a"
    bodies = [b"{oops " + marker.encode(), b"[" * 100_000 + marker.encode(), b'{"type": "' + marker.encode()]
    for body in bodies:
        for content_type in ("application/json", "application/x-www-form-urlencoded"):
            status, _ = await post(slack, body, {"Content-Type": content_type})
            assert status == 401
    assert marker not in logged(caplog)
    assert not [r for r in caplog.records if r.exc_info]
    assert slack.fake.messages == []


async def test_forged_and_stale_bodies_are_refused_and_never_logged(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = slack.fake
    text = "my private words 91c2"
    envelope = fake.envelope(fake.message_event(f"<@{BOT_USER_ID}> {text}", mention=True))
    forged = await slack.sender.event(envelope, secret="not-the-signing-secret")
    stale = await slack.sender.event(envelope, timestamp=int(time.time()) - 6 * 60)
    future = await slack.sender.event(envelope, timestamp=int(time.time()) + 6 * 60)
    body = json.dumps(envelope)
    stamp = int(time.time())
    for headers in (
        {"X-Slack-Request-Timestamp": str(stamp)},  # no signature
        {"X-Slack-Signature": sign(body, stamp)},  # no timestamp
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": sign(body, stamp)},
        {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": "v0=\u00e9"},
    ):
        status, _ = await post(slack, body.encode(), {"Content-Type": "application/json", **headers})
        assert status == 401
    await slack.background.idle()
    assert (forged.status, stale.status, future.status) == (401, 401, 401)
    assert text not in logged(caplog)
    assert fake.messages == [] and slack.openai.chat_requests() == []


async def test_oversize_bodies_get_413_signed_or_not(slack: Slack) -> None:
    big = json.dumps({"type": "event_callback", "pad": "x" * MAX_BODY_BYTES})
    assert (await slack.sender.send(big, "application/json")).status == 413
    status, _ = await post(slack, big.encode(), {"Content-Type": "application/json"})
    assert status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the body is read only up to the limit
        for _ in range(40):
            yield b"x" * 65536

    session = slack.sender._session
    async with session.post(
        slack.sender.url, data=chunks(), headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 413


async def test_a_genuine_signed_event_is_still_answered(slack: Slack) -> None:
    slack.openai.script(Reply(text="still here"))
    await slack.mention("are you there?")
    [reply] = slack.fake.bot_messages()
    assert reply.current == "still here"
