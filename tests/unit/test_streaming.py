"""The shared streaming-reply pump (bots/streaming.py) against a recording in-memory sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from bots.splitting import Splitting
from bots.streaming import StreamingReply
from core.domain.errors import BotError
from core.domain.types import Attachment


class Refused(Exception):
    """What the recording platform raises when told to fail."""


class RecordingSink:
    """A platform in memory: every call recorded in order, messages kept by handle."""

    transient: tuple[type[Exception], ...] = (Refused,)

    def __init__(self, limit: int = 1000, placeholder: str | None = "…") -> None:
        self.splitting = Splitting(limit, paragraphs=True)
        self.placeholder = placeholder
        self.calls: list[tuple[str, object, str]] = []
        self.messages: dict[int, str] = {}
        self.gate: asyncio.Event | None = None  # set: edits wait for it (a slow platform)
        self.fail_edits = False
        self.ended = False

    async def begin(self) -> str | None:
        return self.placeholder

    async def native_status(self, text: str) -> bool:
        return False

    async def post(self, text: str) -> object:
        handle = len(self.calls)
        self.calls.append(("post", handle, text))
        self.messages[handle] = text
        return handle

    async def edit(self, handle: object, text: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_edits:
            raise Refused("rate limited")
        self.calls.append(("edit", handle, text))
        self.messages[int(str(handle))] = text

    async def delete(self, handle: object) -> None:
        self.calls.append(("delete", handle, ""))
        del self.messages[int(str(handle))]

    async def upload(self, attachment: Attachment) -> None:
        self.calls.append(("upload", None, attachment.name))

    async def announce(self) -> None:
        return None

    async def end(self) -> None:
        self.ended = True

    def streaming(self, text: str, status: str | None, posted: bool) -> str | None:
        return f"{text} [{status}]" if status else text or None

    def final(self, text: str) -> str:
        return text or "(empty)"

    def failure(self, message: str, streamed: str, shown: str) -> str:
        return f"{streamed}\n\n! {message}" if streamed else f"! {message}"

    def shown(self) -> list[str]:
        return list(self.messages.values())

    def edits(self) -> list[str]:
        return [text for kind, _, text in self.calls if kind == "edit"]


async def settle(condition: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_updates_are_throttled_to_one_edit_per_interval_and_show_the_newest_text() -> None:
    sink = RecordingSink()
    reply = StreamingReply(sink, interval=0.5)
    await reply.start()  # the placeholder counts as an edit
    started = time.monotonic()
    for n in range(1, 21):
        await reply.update("word " * n)
        await asyncio.sleep(0.001)
    await settle(lambda: bool(sink.edits()))
    assert time.monotonic() - started >= 0.45  # not before the interval had passed
    await asyncio.sleep(0.6)
    assert sink.edits() == [("word " * 20)]  # twenty updates, one edit: the newest text
    await reply.finish("done")
    assert sink.shown() == ["done"]


async def test_update_never_waits_for_the_platform() -> None:
    sink = RecordingSink()
    sink.gate = asyncio.Event()  # edits hang until released
    reply = StreamingReply(sink, interval=0.0)
    await reply.start()
    await reply.update("first")
    await asyncio.sleep(0.02)  # the pump is now stuck talking to the platform
    started = time.monotonic()
    await reply.update("second")
    await reply.update("third")
    assert time.monotonic() - started < 0.01
    sink.gate.set()
    await settle(lambda: sink.shown() == ["third"])


async def test_a_reply_past_the_limit_is_split_into_several_messages() -> None:
    sink = RecordingSink(limit=40, placeholder=None)
    reply = StreamingReply(sink, interval=0.0)
    paragraphs = [f"Paragraph {n} has some words." for n in range(5)]
    await reply.start()
    await reply.finish("\n\n".join(paragraphs))
    assert sink.shown() == paragraphs
    assert [kind for kind, _, _ in sink.calls] == ["post"] * 5


async def test_a_shorter_restart_deletes_the_surplus_messages() -> None:
    sink = RecordingSink(limit=40, placeholder=None)
    reply = StreamingReply(sink, interval=0.0)
    await reply.start()
    await reply.update("\n\n".join(f"Paragraph {n} has some words." for n in range(3)))
    await settle(lambda: len(sink.messages) == 3)
    await reply.status("Using calculator…")  # a tool round; the next round starts over, shorter
    await reply.finish("Short.")
    assert sink.shown() == ["Short."]
    assert [kind for kind, _, _ in sink.calls][-3:] == ["edit", "delete", "delete"]


async def test_finish_drops_an_edit_still_waiting_for_its_turn() -> None:
    sink = RecordingSink()
    reply = StreamingReply(sink, interval=5.0)
    await reply.start()  # the placeholder counts as the last edit: the next one is 5 s away
    await reply.update("The answer is")
    started = time.monotonic()
    await reply.finish("The answer is 42.")
    assert time.monotonic() - started < 1.0
    assert sink.edits() == ["The answer is 42."]  # the pending edit never reached the platform
    assert sink.ended
    await reply.update("late")  # nothing streams after the end
    await asyncio.sleep(0.02)
    assert sink.shown() == ["The answer is 42."]


async def test_finish_lets_an_edit_that_is_talking_to_the_platform_complete_first() -> None:
    sink = RecordingSink()
    sink.gate = asyncio.Event()
    reply = StreamingReply(sink, interval=0.0)
    await reply.start()
    await reply.update("partial")
    await asyncio.sleep(0.02)
    finishing = asyncio.create_task(reply.finish("complete"))
    await asyncio.sleep(0.02)
    assert not finishing.done()  # waits for the edit in flight
    sink.gate.set()
    await finishing
    assert sink.edits() == ["partial", "complete"]


async def test_an_error_after_partial_text_is_shown_under_it() -> None:
    sink = RecordingSink()
    reply = StreamingReply(sink, interval=0.0)
    await reply.start()
    await reply.update("Half an answer")
    await settle(lambda: sink.shown() == ["Half an answer"])
    await reply.error(BotError("The model stopped answering."))
    assert sink.shown() == ["Half an answer\n\n! The model stopped answering."]
    assert sink.ended


async def test_an_error_before_anything_is_shown_can_go_elsewhere() -> None:
    sink = RecordingSink(placeholder=None)
    private: list[str] = []

    async def on_error(error: BotError) -> None:
        private.append(error.user_message)

    reply = StreamingReply(sink, interval=5.0, on_error=on_error)
    await reply.start()
    await reply.update("never shown")  # waiting for its turn: dropped
    await reply.error(BotError("You are rate limited."))
    assert private == ["You are rate limited."] and sink.calls == [] and sink.ended


async def test_a_failed_streamed_edit_is_logged_and_the_final_text_still_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = RecordingSink()
    reply = StreamingReply(sink, interval=0.0)
    await reply.start()
    sink.fail_edits = True
    await reply.update("streamed")
    await settle(lambda: "could not show a streamed update" in caplog.text)
    sink.fail_edits = False
    await reply.finish("final")
    assert sink.shown() == ["final"]


async def test_attachments_are_uploaded_and_empty_answers_are_shown_as_the_sink_says() -> None:
    sink = RecordingSink()
    reply = StreamingReply(sink, interval=0.0)
    await reply.start()
    await reply.attach(Attachment("chart.png", "image/png", b"png"))
    await reply.finish("")
    assert sink.calls[1] == ("upload", None, "chart.png") and sink.shown() == ["(empty)"]


async def test_an_injected_clock_decides_when_the_next_edit_may_go() -> None:
    now = [100.0]
    sink = RecordingSink()
    reply = StreamingReply(sink, interval=1.0, clock=lambda: now[0])
    await reply.start()  # an edit at t=100
    now[0] = 101.5  # more than the interval later: the next edit goes at once
    await reply.update("soon")
    await settle(lambda: sink.shown() == ["soon"], within=0.5)
