"""A hostile calculator expression through the real stack (signed Slack events, bolt, the OpenAI SDK against
the fakes): while the tool runs, `/healthz` and another user's event are answered at once, and the model gets
the calculator's refusal back as a tool error."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.db.session import Database
from core.domain.types import Attachment, ChatUser, ConversationKey, IncomingMessage
from core.guards.audit import ModerationAudit
from core.guards.channel_policy import ChannelPolicies
from core.guards.redaction import RedactionGuard
from core.guards.redactor import Redacted, Redactor
from core.llm.types import ToolCall
from core.tools.executor import ToolExecutor
from core.tools.registry import Tool, ToolContext, ToolRegistry
from tests.fakes.openai_api import FakeOpenAI, Reply, ToolCallSpec
from tests.fakes.slack_api import BOT_USER_ID, SIGNING_SECRET, sign
from tests.integration.test_slack_adapter import running_slack
from tests.loop_probe import LoopProbe

HOSTILE = "round(7, -10**7)"  # ~11 s of one CPU in a single C call when unbounded


class Prober(threading.Thread):
    """From outside the event loop: /healthz again and again, and one signed event once the first model
    request was seen, each with its latency, until stopped. A computation that holds the interpreter in one
    C call starves this thread as it starves the loop, so the gaps between answers count as well."""

    def __init__(self, base: str, openai: FakeOpenAI, event_body: str) -> None:
        super().__init__(daemon=True)
        self.base, self.openai, self.event_body = base, openai, event_body
        self.stop = threading.Event()
        self.event_sent = threading.Event()
        self.health: list[float] = []
        self.answered: list[float] = []
        self.event_latency: float | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            self.health.append(self._timed(urllib.request.Request(f"{self.base}/healthz")))
            if self.event_latency is None and self.openai.chat_requests():
                self.event_latency = self._timed(self._event())
                self.event_sent.set()
            time.sleep(0.02)

    def _event(self) -> urllib.request.Request:
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": sign(self.event_body, stamp, SIGNING_SECRET),
        }
        return urllib.request.Request(
            f"{self.base}/slack/events", data=self.event_body.encode(), headers=headers, method="POST"
        )

    def _timed(self, request: urllib.request.Request) -> float:
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
            response.read()
        self.answered.append(time.perf_counter())
        return self.answered[-1] - started

    def longest_wait(self) -> float:
        """The longest answer, or the longest stretch between two answers (a poll every 20 ms)."""
        gaps = [later - earlier for earlier, later in zip(self.answered, self.answered[1:], strict=False)]
        return max([*self.health, *gaps])


def _tool_messages(openai: FakeOpenAI) -> list[dict[str, Any]]:
    return [m for body in openai.chat_requests() for m in body["messages"] if m["role"] == "tool"]


async def test_a_hostile_calculation_leaves_the_loop_free_and_comes_back_as_a_tool_error(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(
        Reply(tool_calls=[ToolCallSpec("calculator", json.dumps({"expression": HOSTILE}), id="c1")]),
        Reply(text="That number is too large to compute."),
        Reply(text="Hello Bob."),
    )
    async with running_slack(tmp_path, fake_openai) as slack:
        base = slack.sender.url.removesuffix("/slack/events")
        bob = slack.fake.message_event(f"<@{BOT_USER_ID}> hi", mention=True, user="U0BOB", channel="C0OTHER")
        prober = Prober(base, fake_openai, json.dumps(slack.fake.envelope(bob)))
        prober.start()
        try:
            alice = slack.fake.message_event(f"<@{BOT_USER_ID}> what is {HOSTILE}?", mention=True)
            assert (await slack.sender.event(slack.fake.envelope(alice))).status == 200
            await slack.background.idle()
            # Bob's event is sent once the first model request is seen.
            assert await asyncio.to_thread(prober.event_sent.wait, 130)
            await slack.background.idle()
        finally:
            prober.stop.set()
            await asyncio.to_thread(prober.join, 130)
        # Milliseconds when the loop is free; the whole ~11 s computation when it is not.
        assert prober.longest_wait() < 1.0, prober.longest_wait()
        assert prober.event_latency is not None and prober.event_latency < 1.0, prober.event_latency
        fed_back = [m for m in _tool_messages(fake_openai) if m["tool_call_id"] == "c1"]
        assert len(fed_back) == 1
        result = json.loads(fed_back[0]["content"])
        assert result["kind"] == "error" and "round()" in result["error"], result
        texts = [
            c.args.get("text")
            for c in slack.fake.calls_of("chat.update") + slack.fake.calls_of("chat.postMessage")
        ]
        assert any("too large to compute" in (t or "") for t in texts)
        assert any("Hello Bob." in (t or "") for t in texts)


async def test_huge_files_that_only_look_like_images_are_refused_without_holding_the_loop(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """15 MB that start like a JPEG (a byte-by-byte walk: seconds on the loop per file) and 1 MB of text (far
    over the characters read: refused by its size, not decoded)."""
    fake_openai.script(Reply(text="I read your question."))
    async with running_slack(tmp_path, fake_openai) as slack:
        files = [
            slack.fake.add_file("photo.jpg", b"\xff\xd8\xff" + bytes(15_000_000), "image/jpeg", "jpg"),
            slack.fake.add_file("log.txt", b"a" * 1_000_000, "text/plain", "text"),
        ]
        async with LoopProbe() as probe:
            event = await slack.message(f"<@{BOT_USER_ID}> what is this?", files=files)
        notice, answer = slack.fake.bot_messages(thread_ts=event["ts"])
        assert "photo.jpg" in notice.current and "log.txt" in notice.current
        assert answer.current == "I read your question."
        assert probe.cpu < 0.25, probe


# ---------------------------------------------------------------------- large texts are redacted off the loop

LARGE = 20_000  # characters above which a text must not be redacted on the event loop
PAGE = "Write to ada@example.com about the plan. " + "The quick brown fox jumps over the lazy dog. " * 5_000


class WatchedRedactor(Redactor):
    """The real redactor, telling whether the event loop ran while it redacted a large text: before it
    starts, it waits (at most 10 s) for a sign of life from the loop. Run on the loop itself, it waits in
    vain: nothing else runs there until it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.large_started = threading.Event()
        self.loop_alive = threading.Event()
        self.loop_ran_meanwhile: list[bool] = []

    def redact(self, text: str) -> Redacted:
        if len(text) > LARGE:
            self.loop_alive.clear()
            self.large_started.set()
            self.loop_ran_meanwhile.append(self.loop_alive.wait(10))
            self.large_started.clear()
        return super().redact(text)


async def keep_answering(redactor: WatchedRedactor) -> None:
    """What the loop does for everyone else meanwhile, reduced to a sign of life."""
    while True:
        if redactor.large_started.is_set():
            redactor.loop_alive.set()
        await asyncio.sleep(0.001)


class NoArguments(BaseModel):
    pass


async def test_a_large_tool_result_is_redacted_while_the_loop_keeps_answering(database: Database) -> None:
    async def read_page(args: NoArguments, context: ToolContext) -> str:
        return PAGE  # 225 KB, e.g. a fetched page or an MCP server's answer

    redactor = WatchedRedactor()
    registry = ToolRegistry()
    registry.add(Tool("page", "Read the page.", NoArguments, read_page))
    executor = ToolExecutor(
        registry, database, ChannelPolicies(database), is_admin=lambda user: False, redactor=redactor
    )
    message = IncomingMessage(
        ConversationKey("slack", "T1", "C1", "1.0"),
        ChatUser("slack", "U0ADA", "ada"),
        "read it",
        "e1",
        datetime.now(UTC),
    )
    ticking = asyncio.create_task(keep_answering(redactor))
    try:
        [result] = await executor.run([ToolCall("c1", "page", "{}")], message)
    finally:
        ticking.cancel()
    assert redactor.loop_ran_meanwhile == [True]
    assert result.content.startswith("Write to [REDACTED:email] about the plan.")


async def test_a_large_attached_file_is_redacted_while_the_loop_keeps_answering(database: Database) -> None:
    redactor = WatchedRedactor()
    guard = RedactionGuard(redactor, ModerationAudit(database))
    notes = Attachment("notes.txt", "text/plain", PAGE.encode())
    message = IncomingMessage(
        ConversationKey("slack", "T1", "C1", "1.0"),
        ChatUser("slack", "U0ADA", "ada"),
        "what do these notes say?",
        "e1",
        datetime.now(UTC),
        attachments=(notes,),
    )
    ticking = asyncio.create_task(keep_answering(redactor))
    try:
        screened = await guard.check(message)
    finally:
        ticking.cancel()
    assert redactor.loop_ran_meanwhile == [True]
    assert screened.attachments[0].data.decode().startswith("Write to [REDACTED:email] about the plan.")
