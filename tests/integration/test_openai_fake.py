"""The wire-level OpenAI fake, exercised through the real ``openai.AsyncOpenAI`` client."""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai
import pytest
import pytest_asyncio
from openai.types import ModerationMultiModalInputParam

from tests.fakes.openai_api import (
    MODERATION_CATEGORIES,
    Disconnect,
    FakeOpenAI,
    Fault,
    Hang,
    Reply,
    Script,
    ToolCallSpec,
)

pytestmark = pytest.mark.asyncio

USER_HI: list[Any] = [{"role": "user", "content": "hi"}]

ClientFactory = Callable[..., openai.AsyncOpenAI]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest_asyncio.fixture
async def make_client(fake: FakeOpenAI) -> AsyncIterator[ClientFactory]:
    clients: list[openai.AsyncOpenAI] = []

    def factory(**kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=fake.base_url, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks: list[tuple[bytes, bytes]] = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


# ---------------------------------------------------------------------------- chat: happy paths


async def test_streaming_text_with_usage(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Reply(text="Hello there, world!", prompt_tokens=11, completion_tokens=5, cached_tokens=3))
    client = make_client()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER_HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    finish: list[str] = []
    usages = []
    chunk_count = 0
    async for chunk in stream:
        chunk_count += 1
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == "gpt-4o-mini"
        if chunk.usage is not None:
            usages.append(chunk.usage)
            assert chunk.choices == []
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert text == "Hello there, world!"
    assert finish == ["stop"]
    # role chunk + ceil(19 / 4) text chunks + finish chunk + usage chunk
    assert chunk_count == 1 + 5 + 1 + 1
    assert len(usages) == 1
    usage = usages[0]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 5, 16)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert fake.chat_requests()[0]["stream"] is True


async def test_streaming_without_include_usage_has_no_usage(
    fake: FakeOpenAI, make_client: ClientFactory
) -> None:
    fake.script(Reply(text="abc", chunk_delay=0.01))
    stream = await make_client().chat.completions.create(model="m", messages=USER_HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "abc"


async def test_streamed_tool_calls_reassemble(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    args_a = json.dumps({"city": "Paris", "unit": "celsius"})
    args_b = '{"q":1}'
    fake.script(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCallSpec("get_weather", args_a),
                ToolCallSpec("search", args_b, id="call_custom"),
            ],
        )
    )
    stream = await make_client().chat.completions.create(
        model="gpt-4o", messages=USER_HI, stream=True, stream_options={"include_usage": True}
    )
    calls: dict[int, dict[str, str]] = {}
    fragments: dict[int, int] = {}
    text = ""
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
                assert delta.type == "function"
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                if delta.function.arguments:
                    call["arguments"] += delta.function.arguments
                    fragments[delta.index] = fragments.get(delta.index, 0) + 1
    assert text == "Let me check."
    assert finish == "tool_calls"
    assert calls == {
        0: {"id": "call_1", "name": "get_weather", "arguments": args_a},
        1: {"id": "call_custom", "name": "search", "arguments": args_b},
    }
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    # arguments arrive in several fragments, even short ones
    assert fragments == {0: 3, 1: 3}


async def test_non_streaming_completion_parses(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Reply(text="plain answer"), Reply(tool_calls=[ToolCallSpec("lookup", '{"id": 7}')]))
    client = make_client()
    messages: list[Any] = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
    ]

    first = await client.chat.completions.create(model="gpt-4o", messages=messages)
    assert first.object == "chat.completion"
    assert first.id.startswith("chatcmpl-")
    assert first.model == "gpt-4o"
    choice = first.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "plain answer"
    assert choice.message.tool_calls is None
    assert first.usage is not None
    # default usage: (7 + 5) chars // 4 + 3 per message; len("plain answer") // 4
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (3 + 6, 3)
    assert first.usage.total_tokens == 12

    second = await client.chat.completions.create(model="gpt-4o", messages=messages)
    message = second.choices[0].message
    assert second.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.id == "call_1"
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"id": 7})


async def test_default_echo_and_responder(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    client = make_client()
    messages: list[Any] = [
        {"role": "user", "content": "older"},
        {"role": "assistant", "content": "reply"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look "},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                {"type": "text", "text": "here"},
            ],
        },
    ]
    echoed = await client.chat.completions.create(model="m", messages=messages)
    assert echoed.choices[0].message.content == "echo: look here"

    def responder(body: dict[str, Any]) -> Script:
        return Reply(text=f"{body['model']} answered", model="served-model")

    fake.responder = responder
    answered = await client.chat.completions.create(model="asked-model", messages=USER_HI)
    assert answered.choices[0].message.content == "asked-model answered"
    assert answered.model == "served-model"
    assert [r.json["model"] for r in fake.requests] == ["m", "asked-model"]
    assert fake.requests[0].headers["authorization"] == "Bearer test-key"


async def test_invalid_body_is_a_bad_request(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Reply(text="not consumed"))
    with pytest.raises(openai.BadRequestError) as info:
        await make_client().chat.completions.create(model="m", messages=[])
    assert info.value.param == "messages"
    assert info.value.type == "invalid_request_error"
    assert fake.pending == 1
    assert len(fake.requests) == 1


# ---------------------------------------------------------------------------- chat: failures


async def test_rate_limit_is_retried_then_succeeds(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Fault(429, code="rate_limit_exceeded", retry_after=0), Reply(text="second time lucky"))
    client = make_client(max_retries=1)
    answer = await client.chat.completions.create(model="m", messages=USER_HI)
    assert answer.choices[0].message.content == "second time lucky"
    assert len(fake.requests) == 2
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]
    assert fake.pending == 0


async def test_retry_after_is_honoured_when_positive(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    # The SDK only honours 0 < Retry-After <= 120 s; otherwise it backs off 0.375-0.5 s. A wait of 1.5 s can
    # only come from the header (a lower bound: a loaded machine makes waits longer, never shorter).
    fake.script(Fault(503, retry_after=1.5), Reply(text="ok"))
    started = time.monotonic()
    answer = await make_client(max_retries=1).chat.completions.create(model="m", messages=USER_HI)
    assert answer.choices[0].message.content == "ok"
    assert time.monotonic() - started >= 1.5


async def test_retry_after_over_two_minutes_is_not_retried(
    fake: FakeOpenAI, make_client: ClientFactory
) -> None:
    fake.script(Fault(429, code="rate_limit_exceeded", retry_after=300), Reply(text="unused"))
    with pytest.raises(openai.RateLimitError) as info:
        await make_client(max_retries=2).chat.completions.create(model="m", messages=USER_HI)
    assert info.value.response.headers["retry-after"] == "300"
    assert len(fake.requests) == 1


async def test_server_error_without_retries(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Fault(500, message="boom"))
    with pytest.raises(openai.InternalServerError) as info:
        await make_client(max_retries=0).chat.completions.create(model="m", messages=USER_HI)
    assert info.value.status_code == 500
    assert info.value.type == "server_error"
    assert "boom" in str(info.value)
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")


async def test_insufficient_quota(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Fault(429, code="insufficient_quota", message="You exceeded your current quota"))
    with pytest.raises(openai.RateLimitError) as info:
        await make_client(max_retries=0).chat.completions.create(model="m", messages=USER_HI)
    assert info.value.code == "insufficient_quota"
    assert info.value.type == "insufficient_quota"
    assert info.value.body == {
        "message": "You exceeded your current quota",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }


async def test_sdk_retries_insufficient_quota_like_any_429(
    fake: FakeOpenAI, make_client: ClientFactory
) -> None:
    # The SDK does not look at the error code: a quota error is retried like a rate limit.
    fake.script(*[Fault(429, code="insufficient_quota", retry_after=0.01)] * 3)
    with pytest.raises(openai.RateLimitError):
        await make_client(max_retries=2).chat.completions.create(model="m", messages=USER_HI)
    assert len(fake.requests) == 3


async def test_hang_times_out(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Hang(seconds=10))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as info:
        await make_client(max_retries=0, timeout=0.5).chat.completions.create(model="m", messages=USER_HI)
    assert time.monotonic() - started < 3
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)
    assert fake.requests[0].headers["x-stainless-read-timeout"] == "0.5"


async def test_disconnect_mid_stream(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    # openai 3.54 wraps the broken stream as openai.APIConnectionError (exactly that class, not
    # APITimeoutError), raised from inside the `async for`; its __cause__ is
    # httpx2.RemoteProtocolError("peer closed connection without sending complete message body
    # (incomplete chunked read)").
    fake.script(Disconnect(text="partial answer", after_chars=7))
    stream = await make_client().chat.completions.create(model="m", messages=USER_HI, stream=True)
    received = ""
    with pytest.raises(openai.APIConnectionError) as info:
        async for chunk in stream:
            received += chunk.choices[0].delta.content or ""
    assert type(info.value) is openai.APIConnectionError
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert received == "partial"


async def test_disconnect_non_streaming(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    # A truncated non-streamed body surfaces the same way: openai.APIConnectionError.
    fake.script(Disconnect())
    with pytest.raises(openai.APIConnectionError) as info:
        await make_client().chat.completions.create(model="m", messages=USER_HI)
    assert type(info.value) is openai.APIConnectionError
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


async def test_wrong_api_key(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.script(Reply(text="not consumed"))
    with pytest.raises(openai.AuthenticationError) as info:
        await make_client(api_key="wrong-key", max_retries=2).chat.completions.create(
            model="m", messages=USER_HI
        )
    assert info.value.code == "invalid_api_key"
    assert len(fake.requests) == 1  # 401 is not retried
    assert fake.pending == 1


# ---------------------------------------------------------------------------- other endpoints


async def test_moderation_flagged_and_clean(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.moderation_flags = {"kill": {"violence": 0.93, "harassment/threatening": 0.4}}
    result = await make_client().moderations.create(
        model="omni-moderation-latest", input=["I will kill you", "have a nice day"]
    )
    assert result.id.startswith("modr-")
    assert result.model == "omni-moderation-latest"
    flagged, clean = result.results
    assert flagged.flagged is True
    assert flagged.categories.violence is True
    assert flagged.categories.harassment_threatening is False
    assert flagged.category_scores.violence == pytest.approx(0.93)
    assert flagged.category_scores.harassment_threatening == pytest.approx(0.4)
    assert flagged.category_applied_input_types.violence == ["text"]
    assert clean.flagged is False
    assert not any(clean.categories.model_dump().values())
    assert clean.category_scores.violence == pytest.approx(0.0001)

    raw = await make_client().moderations.with_raw_response.create(input="nothing to see")
    single = raw.parse()
    assert single.model == "omni-moderation-latest"
    assert len(single.results) == 1 and single.results[0].flagged is False
    wire = raw.http_response.json()["results"][0]
    for key in ("categories", "category_scores", "category_applied_input_types"):
        assert list(wire[key]) == list(MODERATION_CATEGORIES)


async def test_moderation_multimodal_and_faults(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.moderation_flags = {"gore": {"violence/graphic": 0.8}}
    fake.moderation_script = [Fault(503, message="busy")]
    client = make_client()
    with pytest.raises(openai.InternalServerError):
        await client.moderations.create(input="x")
    parts: list[ModerationMultiModalInputParam] = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://img.invalid/gore.png"}},
    ]
    result = await client.moderations.create(input=parts)
    assert len(result.results) == 1
    only = result.results[0]
    assert only.flagged is True and only.categories.violence_graphic is True
    assert only.category_applied_input_types.violence_graphic == ["text", "image"]
    assert only.category_applied_input_types.hate == ["text"]


async def test_image_generation_returns_real_png(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    result = await make_client().images.generate(
        model="gpt-image-1", prompt="a red fox", size="1536x1024", n=2, quality="low"
    )
    assert result.data is not None and len(result.data) == 2
    image = result.data[0]
    assert image.b64_json is not None
    assert image.revised_prompt == "a red fox"
    png = base64.b64decode(image.b64_json)
    assert _png_size(png) == (1536, 1024)
    assert len(png) < 10_000
    chunks = dict(_png_chunks(png))
    assert set(chunks) == {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == 1024 * (1 + 1536 // 8)
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens

    default = await make_client().images.generate(prompt="auto sized", size="auto")
    assert default.data is not None and default.data[0].b64_json is not None
    assert _png_size(base64.b64decode(default.data[0].b64_json)) == (1024, 1024)


async def test_image_faults_and_models(fake: FakeOpenAI, make_client: ClientFactory) -> None:
    fake.image_script = [Fault(400, code="moderation_blocked", message="blocked by safety system")]
    client = make_client()
    with pytest.raises(openai.BadRequestError) as info:
        await client.images.generate(prompt="something")
    assert info.value.code == "moderation_blocked"

    models = [m.id async for m in client.models.list()]
    assert "gpt-4o-mini" in models

    with pytest.raises(openai.NotFoundError):
        await client.embeddings.create(model="text-embedding-3-small", input="x")
