"""The in-memory window cache of conversation history is bounded in bytes and holds no image data: images
are read back from the database when a window is used (real database, the real openai SDK, the wire fake)."""

from __future__ import annotations

import base64
import gc
import os
import struct
import tracemalloc
import zlib

from core.db.session import Database
from core.domain.types import Attachment
from core.llm.tokens import TokenCounter
from core.turn.history import HistoryStore
from tests.fakes.openai_api import FakeOpenAI, Reply, png_bytes
from tests.support import RecordingReplier, incoming, make_llm, make_service

MB = 1024 * 1024


def big_png(size: int, width: int = 64, height: int = 48) -> bytes:
    """A valid PNG of about ``size`` bytes: a small image with a large private ancillary chunk of noise."""
    small = png_bytes(width, height)
    noise = os.urandom(size)
    chunk = struct.pack(">I", len(noise)) + b"zzNo" + noise + struct.pack(">I", zlib.crc32(b"zzNo" + noise))
    return small[:-12] + chunk + small[-12:]  # before IEND


def image_urls(request: dict[str, object]) -> list[str]:
    urls = []
    for message in request["messages"]:  # type: ignore[attr-defined]
        content = message.get("content")
        if isinstance(content, list):
            urls += [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
    return urls


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode("ascii")


async def test_many_conversations_with_large_images_stay_under_the_byte_bound(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    history = HistoryStore(database, TokenCounter(), cache_size=256, cache_bytes=4 * MB)
    service = make_service(database, llm, history=history)
    fake_openai.responder = lambda body: Reply(text="A picture of noise.")
    threads = [f"T{n}" for n in range(8)]
    await service.handle(incoming("warm-up", "w0", thread="W"), RecordingReplier())  # token tables loaded
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for n, thread in enumerate(threads):
            image = big_png(2 * MB)
            attachment = Attachment("noise.png", "image/png", image)
            message = incoming("what is this?", f"e{n}", thread=thread, attachments=(attachment,))
            await service.handle(message, RecordingReplier())
            await service.handle(incoming("and now?", f"f{n}", thread=thread), RecordingReplier())
            assert image_urls(fake_openai.chat_requests()[-1]) == [data_url(image)]
            fake_openai.requests.clear()  # the fake keeps what it was sent; only the cache is measured
            del image, attachment, message
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 8 conversations with a 2 MB image each: 16 MB of images, 21 MB as base64. None of it is cached (what
    # remains is the last request's body in the SDK and the fake, about 5.5 MB).
    assert history.cached_conversations == len(threads) + 1
    assert 0 < history.cached_bytes <= 64 * 1024
    assert grown < 12 * MB, f"{grown / MB:.1f} MB retained"
    await llm.close()


async def test_the_byte_bound_evicts_the_oldest_windows(database: Database, fake_openai: FakeOpenAI) -> None:
    llm = make_llm(fake_openai.base_url)
    history = HistoryStore(database, TokenCounter(), cache_size=256, cache_bytes=6_000)
    service = make_service(database, llm, history=history)
    fake_openai.responder = lambda body: Reply(text="ok " * 100)
    for n in range(12):
        await service.handle(incoming("tell me more " * 20, f"e{n}", thread=f"T{n}"), RecordingReplier())
        await service.handle(incoming("and more", f"f{n}", thread=f"T{n}"), RecordingReplier())
        assert history.cached_bytes <= 6_000
    assert 0 < history.cached_conversations < 12
    await llm.close()


async def test_a_turn_after_eviction_still_sends_the_image(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    history = HistoryStore(database, TokenCounter(), cache_size=2, cache_bytes=1 * MB)
    service = make_service(database, llm, history=history)
    fake_openai.responder = lambda body: Reply(text="Seen.")
    image = big_png(300_000)
    photo = Attachment("photo.png", "image/png", image)
    await service.handle(incoming("look", "e1", thread="A", attachments=(photo,)), RecordingReplier())
    await service.handle(incoming("cached?", "e2", thread="A"), RecordingReplier())  # served from the cache
    for n in range(3):  # more conversations than the cache holds: A is evicted
        await service.handle(incoming("hello", f"o{n}", thread=f"O{n}"), RecordingReplier())
    await service.handle(incoming("remember the photo?", "e3", thread="A"), RecordingReplier())
    requests = [r for r in fake_openai.chat_requests() if r["messages"][1].get("content") != "hello"]
    assert [image_urls(r) for r in requests] == [[data_url(image)]] * 3
    await llm.close()
