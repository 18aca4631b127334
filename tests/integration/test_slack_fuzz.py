"""Signed but malformed Slack input (issue 13 item 11): missing and wrong-typed fields, unknown subtypes, odd
Unicode, huge arguments, broken bodies. Whatever Slack (or whoever holds the signing secret) sends, the
answer is 2xx or 4xx, nothing logs a traceback, and nobody is shown a Python repr."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import BOT_USER_ID, SIGNING_SECRET, FakeSlack
from tests.integration.test_slack_adapter import Slack, running_slack

SEED = 13
CASES = 300
FORM = "application/x-www-form-urlencoded"

ODD: list[Any] = [
    False,
    True,
    None,
    0,
    -1,
    1e308,
    [],
    ["U0ALICE", 2],
    {},
    {"id": "U0FZ001"},
    "",
    "\ud800",
    "a\udfffb\x00c",
    "\u202e\u0000\ufeff😀" * 50,
    "<" * 10_000,
    "x" * 50_000,
    "U0FZ001",
    "1700000000.000001",
    "message_changed",
    "unknown_subtype",
    [[[[[[[[["deep"]]]]]]]]],
]
EVENT_FIELDS = [
    "user",
    "subtype",
    "text",
    "ts",
    "thread_ts",
    "channel",
    "channel_type",
    "files",
    "bot_id",
    "bot_profile",
    "hidden",
    "type",
    "team",
    "assistant_thread",
    "message",
]
ENVELOPE_FIELDS = ["type", "team_id", "event", "authorizations", "event_id", "event_time", "api_app_id"]
COMMAND_FIELDS = [
    "text",
    "user_id",
    "channel_id",
    "team_id",
    "response_url",
    "trigger_id",
    "user_name",
    "command",
]


@pytest.fixture
async def slack(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Slack]:
    async with running_slack(tmp_path, fake_openai) as running:
        yield running


def mutated_event(fake: FakeSlack, rng: random.Random) -> str:
    mention = rng.random() < 0.5
    event = fake.message_event(f"<@{BOT_USER_ID}> hello", mention=mention)
    if rng.random() < 0.3:
        event["channel_type"] = "im"
    envelope = fake.envelope(event)
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.75:
            target, name = envelope["event"], rng.choice(EVENT_FIELDS)
            if not isinstance(target, dict):
                break
        else:
            target, name = envelope, rng.choice(ENVELOPE_FIELDS)
        if rng.random() < 0.2:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(rng.choice(ODD))
    return json.dumps(envelope)


def mutated_command(fake: FakeSlack, rng: random.Random) -> str:
    name = rng.choice(["/ai", "/ai-admin"])
    text = rng.choice(["ask hi", "image a cat", "report", "usage", "model x", "quota show", "", "reset"])
    fields: dict[str, Any] = fake.command_payload(name, text, user=rng.choice(["U0ALICE", "U0ADMIN"]))
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(COMMAND_FIELDS)
        if rng.random() < 0.3:
            fields.pop(key, None)
        else:
            odd = rng.choice(ODD)
            fields[key] = f"{text} {odd}" if key == "text" and isinstance(odd, str) else odd
    body = urlencode(fields, encoding="utf-8", errors="surrogatepass")  # lone surrogates as %ED%A0%80
    if rng.random() < 0.2:
        body += "&text=%ED%A0%80%F0%9F%98%80"  # an encoded lone surrogate and an emoji, a duplicate field
    return body


def broken_bodies(fake: FakeSlack) -> list[tuple[str | bytes, str]]:
    valid = json.dumps(fake.envelope(fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True)))
    return [
        ('"just a string"', "application/json"),
        (valid[: len(valid) // 2], "application/json"),
        ("[" * 10_000 + "]" * 10_000, "application/json"),
        ('{"type": "event_callback", "event": ' + "[" * 10_000 + "]" * 10_000 + "}", "application/json"),
        ("[]", "application/json"),
        ("null", "application/json"),
        ("12", "application/json"),
        ("", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        ('{"type": "url_verification"}', "application/json"),
        ('{"type": "url_verification", "challenge": ["x"]}', "application/json"),
        ('{"type": "event_callback"}', "application/json"),
        ('{"type": "block_actions"}', "application/json"),
        ("payload=%7B%22type%22%3A%22block_actions%22%7D", FORM),
        ("payload=%7Boops", FORM),
        ("&".join(f"f{i}=1" for i in range(5_000)), FORM),
        ("ssl_check=1&token=x", FORM),
        ("command=%2Fai-admin&text=report&user_id=U0ADMIN", FORM),  # no channel_id, no response_url
        (valid, "text/plain"),
        (valid, "application/json; charset=utf-8"),
    ]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.exc_text]


async def test_a_few_hundred_malformed_signed_requests_get_no_5xx_and_no_traceback(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(SEED)
    fake = slack.fake
    cases: list[tuple[str | bytes, str]] = broken_bodies(fake)
    while len(cases) < CASES:
        if rng.random() < 0.6:
            cases.append((mutated_event(fake, rng), "application/json"))
        else:
            cases.append((mutated_command(fake, rng), FORM))
    started = time.monotonic()
    statuses = []
    for body, content_type in cases:
        raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        statuses.append(await send_raw(slack, raw, content_type))
    await slack.background.idle()
    await slack.command("/ai-admin", "report", user="U0ADMIN")

    assert [s for s in statuses if s >= 500] == []
    assert tracebacks(caplog) == []
    shown = [r.get("text") or "" for r in fake.responses] + [m.current for m in fake.messages]
    assert not [text for text in shown if "{'" in text or "Traceback" in text or "\\u" in text]
    assert time.monotonic() - started < 30


async def send_raw(slack: Slack, raw: bytes, content_type: str) -> int:
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + raw, hashlib.sha256)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    async with slack.sender._session.post(slack.sender.url, data=raw, headers=headers) as response:
        await response.read()
        return response.status


# ---------------------------------------------------------------------- the attacker's examples, one by one


async def test_wrong_typed_user_and_subtype_are_ignored_without_a_traceback(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    fake = slack.fake
    odd = [
        {"user": False},
        {"subtype": ["file_share"]},
        {"user": {"id": "U0FZ001"}},
        {"user": ["U0ALICE"], "subtype": None},
        {"channel": 12},
    ]
    for fields in odd:
        event = fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True) | fields
        assert (await slack.sender.event(fake.envelope(event))).status == 200
    await slack.background.idle()
    assert tracebacks(caplog) == []
    assert fake.messages == [] and slack.openai.chat_requests() == []


async def test_bodies_that_are_no_envelope_get_400(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    valid = json.dumps(slack.fake.envelope(slack.fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True)))
    for body in ('"a string"', valid[:40], "[" * 10_000 + "]" * 10_000, "null"):
        assert await send_raw(slack, body.encode(), "application/json") == 400
    assert tracebacks(caplog) == []


async def test_lone_surrogates_and_nuls_are_replaced_at_the_edge(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.mention("tell me about \ud800 this\x00 and \udfff that")  # json.dumps writes \ud800 escapes
    [reply] = slack.fake.bot_messages()
    assert reply.current == "echo: tell me about \ufffd this and \ufffd that"
    assert tracebacks(caplog) == []


async def test_a_slash_command_without_channel_or_response_url_is_answered_clearly(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    for missing in ("channel_id", "response_url", "user_id"):
        fields = slack.fake.command_payload("/ai-admin", "report", user="U0ADMIN")
        del fields[missing]
        delivery = await slack.sender.command(fields)
        assert delivery.status == 200
        assert "incomplete" in json.loads(delivery.body)["text"]
    huge = await slack.sender.command(slack.fake.command_payload("/ai", "ask " + "x" * 40_001))
    assert huge.status == 200 and "too long" in json.loads(huge.body)["text"]
    await slack.background.idle()
    assert tracebacks(caplog) == []
    assert slack.fake.messages == [] and slack.fake.uploads == {}


async def test_a_report_never_shows_a_python_repr_for_a_person(slack: Slack) -> None:
    fake = slack.fake
    event = fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True) | {"user": {"id": "U0FZ001"}}
    await slack.sender.event(fake.envelope(event))
    await slack.mention("hello")
    await slack.command("/ai-admin", "report", user="U0ADMIN")
    shown = [r.get("text") or "" for r in fake.responses] + [m.current for m in fake.messages]
    assert not [text for text in shown if "{'" in text]


async def test_the_longest_image_prompt_still_shows_its_question(slack: Slack) -> None:
    await slack.command("/ai", "image " + "<" * 4_000)  # escaped: 16,000 characters
    [question] = slack.fake.bot_messages()
    assert question.current.startswith("<@U0ALICE> asked for an image: &lt;&lt;")
    assert len(question.current) < 40_000 and question.current.endswith("…")
    [upload] = slack.fake.uploads.values()
    assert upload.initial_comment is not None and len(upload.initial_comment) < 2_000


async def test_an_image_prompt_over_the_limit_is_refused_before_it_is_paid_for(slack: Slack) -> None:
    await slack.command("/ai", "image " + "a" * 10_000)
    [refusal] = slack.fake.responses
    assert "10,000 characters" in refusal["text"] and "at most 4,000" in refusal["text"]
    assert refusal["response_type"] == "ephemeral"
    assert [r for r in slack.openai.requests if r.path == "/v1/images/generations"] == []
    assert slack.fake.bot_messages() == [] and slack.fake.uploads == {}


async def test_a_refusal_quoting_a_huge_model_name_fits_in_a_slack_message(slack: Slack) -> None:
    await slack.command("/ai", "model " + "<" * 30_000)  # escaped: 120,000 characters
    [refusal] = slack.fake.responses
    assert "is not available here" in refusal["text"] and "&lt;" * 99 + "…" in refusal["text"]
    assert len(refusal["text"]) < 1_000


async def test_socket_mode_payloads_are_validated_the_same_way(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_slack(tmp_path, fake_openai, socket=True) as slack:
        fake = slack.fake
        for fields in ({"user": False}, {"subtype": ["file_share"]}, {"user": {"id": "U0FZ001"}}):
            event = fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True) | fields
            ack = await fake.socket_send("events_api", fake.envelope(event))
            assert ack["envelope_id"] == fake.socket_envelopes[-1]["envelope_id"]
        incomplete = fake.command_payload("/ai-admin", "report", user="U0ADMIN")
        del incomplete["channel_id"]
        ack = await fake.socket_send("slash_commands", incomplete)
        assert "incomplete" in ack["payload"]["text"]
        await fake.socket_send("slash_commands", fake.command_payload("/ai", "ask \ud800 ok?"))
        await slack.background.idle()
        question = fake.bot_messages("C0GENERAL")[0]
        assert question.current.endswith("asked: \ufffd ok?")
    assert tracebacks(caplog) == []


async def test_any_refusal_quoting_a_huge_argument_fits_in_a_slack_message(slack: Slack) -> None:
    await slack.command("/ai-admin", "report " + "<" * 30_000, user="U0ADMIN")  # an unknown period, quoted
    [refusal] = slack.fake.responses
    assert refusal["text"].startswith(":warning: Unknown period '&lt;&lt;")
    assert refusal["text"].endswith("…") and len(refusal["text"]) < 40_000


INTERACTIVE_FIELDS = ["user", "team", "channel", "container", "message", "response_url", "actions", "type"]
ACTION_FIELDS = ["value", "action_ts", "block_id", "type", "text"]
SHORTCUT_FIELDS = [
    "user",
    "team",
    "channel",
    "message",
    "message_ts",
    "action_ts",
    "response_url",
    "callback_id",
]
PICKED_FIELDS = ["ts", "thread_ts", "text", "user", "bot_id", "files"]


def mutated_click(fake: FakeSlack, good: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A signed ``block_actions`` payload for one of our buttons, with one to three fields damaged."""
    payload = copy.deepcopy(good)
    action = payload["actions"][0]
    action["action_id"] = rng.choice(
        ["answer:up", "answer:down", "answer:stop", "answer:retry", "tw:approve", "tw:deny"]
    )
    if action["action_id"].startswith("tw:"):
        action["value"] = rng.choice([action["value"], "1", "999999", "-1"])
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.6:
            target, name = action, rng.choice(ACTION_FIELDS)
        else:
            target, name = payload, rng.choice([f for f in INTERACTIVE_FIELDS if f != "actions"])
        if rng.random() < 0.2:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(rng.choice(ODD))
    return payload


def mutated_shortcut(fake: FakeSlack, rng: random.Random) -> dict[str, Any]:
    picked = fake.message_event("what does this mean?", user="U0ADMIN", record=True)
    payload = fake.shortcut_payload(picked, user="U0ALICE")
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            target, name = payload["message"], rng.choice(PICKED_FIELDS)
        else:
            target, name = payload, rng.choice(SHORTCUT_FIELDS)
        if not isinstance(target, dict):
            break
        if rng.random() < 0.2:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(rng.choice(ODD))
    return payload


async def test_malformed_signed_clicks_and_shortcuts_get_no_5xx_and_no_traceback(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    """Every kind of interactivity payload at ``POST /slack/events`` (a click on each of our buttons, the
    message shortcut), signed but with fields missing or of the wrong type: 2xx or 4xx, no traceback, no
    Python repr shown to anyone, and nothing voted, retried or answered on its strength."""
    from sqlalchemy import select

    from core.db.models import AnswerFeedback
    from tests.fakes.openai_api import Reply

    caplog.set_level(logging.INFO)
    rng = random.Random(SEED)
    fake = slack.fake
    slack.openai.script(Reply(text="Paris."))
    event = await slack.mention("capital of France?")
    [answer] = fake.bot_messages(thread_ts=event["ts"])
    good = fake.action_payload(answer, "answer:up")
    statuses = []
    for number in range(120):
        payload = mutated_click(fake, good, rng) if number % 3 else mutated_shortcut(fake, rng)
        body = urlencode({"payload": json.dumps(payload)}, encoding="utf-8", errors="surrogatepass")
        statuses.append(await send_raw(slack, body.encode(), FORM))
    await slack.background.idle()

    assert [s for s in statuses if s >= 500] == []
    assert tracebacks(caplog) == []
    shown = [r.get("text") or "" for r in fake.responses] + [m.current for m in fake.messages]
    assert not [text for text in shown if "{'" in text or "Traceback" in text or "\\u" in text]
    async with slack.core.database.reader() as session:
        votes = list((await session.scalars(select(AnswerFeedback))).all())
    assert all(vote.user_id == "U0ALICE" for vote in votes)  # only a click whose clicker stayed the asker
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    ignored = [r for r in caplog.records if r.getMessage().startswith("Slack block_actions ignored")]
    assert ignored  # the damaged clicks were refused by validation, before any handler read them
