"""A wire-level fake of the OpenAI HTTP API for tests.

``FakeOpenAI`` runs a small aiohttp server on ``127.0.0.1`` (random free port) that speaks
the same JSON / server-sent-events wire format as the real service, so the real
``openai.AsyncOpenAI`` client can be pointed at it with ``base_url=fake.base_url``::

    async with FakeOpenAI() as fake:
        fake.script(Fault(429, code="rate_limit_exceeded", retry_after=0), Reply(text="hi"))
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test-key")
        ...

Chat completions are answered from a FIFO queue of scripted items (``Reply``, ``Fault``,
``Hang``, ``Disconnect``, ``Silent``, ``Stall``), one item per HTTP request, so SDK retries consume the next
item.  When the queue is empty, ``responder`` (if set) decides, else the fake echoes the
last user message.  Supported endpoints: ``POST /v1/chat/completions``,
``POST /v1/moderations``, ``POST /v1/images/generations``, ``GET /v1/models`` and
``GET /v1/models/{id}`` (404 ``model_not_found`` for a model not in ``models``); anything else gets a 404 in
OpenAI's error shape.  Every request is recorded in ``requests``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "MODERATION_CATEGORIES",
    "Disconnect",
    "FakeOpenAI",
    "Fault",
    "Hang",
    "RecordedRequest",
    "Reply",
    "Script",
    "Silent",
    "Stall",
    "ToolCallSpec",
    "png_bytes",
]


@dataclass
class ToolCallSpec:
    """One scripted function tool call; ``id`` defaults to ``call_<n>`` (n counts per fake)."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass
class Reply:
    """One scripted chat completion (streamed or not, depending on the request)."""

    text: str = ""
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" if tool_calls else "stop"
    prompt_tokens: int | None = None  # default: derived from the request's messages
    completion_tokens: int | None = None  # default: derived from text and tool arguments
    cached_tokens: int = 0
    chunk_chars: int = 4  # streamed text piece size
    chunk_delay: float = 0.0  # seconds slept between streamed chunks
    model: str | None = None  # default: the request's model
    reasoning: str = ""  # streamed first as ``reasoning_content`` deltas (a reasoning model's thinking)


@dataclass
class Fault:
    """An HTTP error answer in OpenAI's error shape."""

    status: int
    code: str | None = None
    message: str = "fake error"
    type: str | None = None  # default derived from status (and code)
    retry_after: float | None = None  # sets the Retry-After header (seconds) when given


@dataclass
class Hang:
    """Never answers within ``seconds``: sleeps, then returns 504 (ends early on ``close()``)."""

    seconds: float = 30.0


@dataclass
class Disconnect:
    """Starts an answer, sends ``after_chars`` of ``text``, then drops the connection."""

    text: str = "partial answer"
    after_chars: int = 7


@dataclass
class Silent:
    """A hung provider: accepts the request and never sends a byte (not even headers) until the fake closes
    or the client goes away."""


@dataclass
class Stall:
    """A provider that hangs mid-answer: starts the stream, sends ``text`` as one delta, then never another
    byte until the fake closes or the client goes away."""

    text: str = "Let me think"


Script = Reply | Fault | Hang | Disconnect | Silent | Stall


@dataclass
class RecordedRequest:
    """A request as received; header names are lower-cased, ``json`` is None without a JSON body."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# Categories that omni-moderation also evaluates on images.
_IMAGE_CATEGORIES: frozenset[str] = frozenset(
    {"self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence", "violence/graphic"}
)
_DEFAULT_SCORE = 0.0001
_FLAG_THRESHOLD = 0.5
_DEFAULT_MODERATION_MODEL = "omni-moderation-latest"
_DEFAULT_IMAGE_MODEL = "gpt-image-1"
_MODEL_IDS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-image-1",
    "omni-moderation-latest",
    "text-embedding-3-small",
)
# gpt-image-1 output tokens for a 1024x1024 image, by quality.
_IMAGE_TOKENS: dict[str, int] = {"low": 272, "medium": 1056, "high": 4160}
_TOOL_ARG_FRAGMENTS = 3


def png_bytes(width: int, height: int, rgb: tuple[int, int, int] = (64, 128, 192)) -> bytes:
    """A valid, small, single-colour PNG (1-bit palette image) built with zlib + struct only."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad PNG size {width}x{height}")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # colour type 3 (palette), bit depth 1: every pixel is palette index 0.
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte "none" + packed pixels
    idat = zlib.compress(row * height, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"PLTE", bytes(rgb))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _default_error_type(status: int, code: str | None) -> str:
    if status == 429:
        return "insufficient_quota" if code == "insufficient_quota" else "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    type_: str | None = None,
    param: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    body = _error_body(message, type_ or _default_error_type(status, code), code, param)
    return web.json_response(body, status=status, headers=headers)


def _bad_request(message: str, param: str | None = None) -> web.Response:
    return _error_response(400, message, param=param)


def _content_text(content: Any) -> str:
    """The text of a message ``content``: the string, or the concatenated ``text`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _split(text: str, size: int) -> list[str]:
    if size <= 0:
        return [text] if text else []
    return [text[i : i + size] for i in range(0, len(text), size)]


def _fragments(text: str, count: int) -> list[str]:
    """Split ``text`` into about ``count`` non-empty pieces (fewer only if it is shorter)."""
    if not text:
        return []
    size = max(1, -(-len(text) // count))
    return _split(text, size)


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class FakeOpenAI:
    """An in-process fake OpenAI server; see the module docstring."""

    def __init__(self, *, api_key: str | None = "test-key") -> None:
        # Requests without ``Authorization: Bearer <api_key>`` get a 401 (None: no check).
        self.api_key = api_key
        # Every request received, in order, including failed ones.
        self.requests: list[RecordedRequest] = []
        # Decides the chat answer when the scripted queue is empty (None: echo the last user text).
        self.responder: Callable[[dict[str, Any]], Script] | None = None
        # Substring (matched case-insensitively against text inputs and image URLs) ->
        # {category: score}; a category is flagged when its score >= 0.5.
        self.moderation_flags: dict[str, dict[str, float]] = {}
        # Faults / hangs answered (FIFO) before any real moderation / image answer.
        self.moderation_script: list[Fault | Hang] = []
        # Seconds every moderation answer takes (a real endpoint's latency, for benchmarks).
        self.moderation_delay = 0.0
        self.image_script: list[Fault | Hang] = []
        # The models GET /v1/models lists and GET /v1/models/{id} finds.
        self.models: list[str] = list(_MODEL_IDS)
        self._queue: deque[Script] = deque()
        self._call_counter = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeOpenAI already started")
        self._closing = asyncio.Event()
        runner = web.AppRunner(
            self._build_app(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()  # wakes up pending Hang answers
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``; only valid after ``start()``."""
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    # ------------------------------------------------------------------ scripting / inspection

    def script(self, *items: Script) -> None:
        """Queue answers for ``/chat/completions``; one is consumed per request, in order."""
        self._queue.extend(items)

    @property
    def pending(self) -> int:
        """How many scripted chat answers are still queued."""
        return len(self._queue)

    def chat_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of all ``POST /v1/chat/completions`` requests, in order."""
        return [
            r.json
            for r in self.requests
            if r.method == "POST" and r.path == "/v1/chat/completions" and isinstance(r.json, dict)
        ]

    # ------------------------------------------------------------------ app wiring

    def _build_app(self) -> web.Application:
        @web.middleware
        async def record_and_authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            raw = await request.read()
            parsed: Any = None
            if raw:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=parsed,
                )
            )
            if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return _error_response(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            return await handler(request)

        async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.setdefault("x-request-id", f"req_{uuid.uuid4().hex}")

        app = web.Application(
            middlewares=[record_and_authenticate],
            client_max_size=64 * 1024 * 1024,  # the real API takes requests with several large images
        )
        app.on_response_prepare.append(add_request_id)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/v1/moderations", self._moderations)
        app.router.add_post("/v1/images/generations", self._image_generations)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model:.+}", self._model)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    @staticmethod
    async def _json_object(request: web.Request) -> dict[str, Any] | None:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns True (early) when the fake is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        return self._closing.is_set()

    async def _hang(self, hang: Hang) -> web.Response:
        await self._pause(hang.seconds)
        return _error_response(504, "Gateway timeout (fake hang)", type_="server_error")

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error_response(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url")

    async def _models(self, request: web.Request) -> web.Response:
        created = int(time.time())
        data = [{"id": m, "object": "model", "created": created, "owned_by": "system"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model not in self.models:
            return _error_response(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return web.json_response(
            {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
        )

    # ------------------------------------------------------------------ chat completions

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_object(request)
        if body is None:
            return _bad_request("We could not parse the JSON body of your request.")
        if not isinstance(body.get("model"), str):
            return _bad_request("you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _bad_request("'messages' must be a non-empty array", param="messages")
        if body.get("tool_choice") is not None and not body.get("tools"):
            return _bad_request(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param="tool_choice",
            )

        item = self._next_chat_item(body)
        stream = bool(body.get("stream"))
        if isinstance(item, Fault):
            return _error_response(
                item.status, item.message, code=item.code, type_=item.type, retry_after=item.retry_after
            )
        if isinstance(item, Hang):
            return await self._hang(item)
        if isinstance(item, Disconnect):
            return await self._disconnect(request, body, item, stream=stream)
        if isinstance(item, Silent):
            await self._closing.wait()
            return _error_response(504, "Gateway timeout (fake silence)", type_="server_error")
        if isinstance(item, Stall):
            return await self._stall(request, body, item)
        if stream:
            return await self._stream_reply(request, body, item)
        return web.json_response(self._completion(body, item))

    def _next_chat_item(self, body: dict[str, Any]) -> Script:
        if self._queue:
            return self._queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        return Reply(text=f"echo: {_last_user_text(body['messages'])}")

    def _tool_call_id(self, spec: ToolCallSpec) -> str:
        if spec.id is not None:
            return spec.id
        self._call_counter += 1
        return f"call_{self._call_counter}"

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        messages: list[Any] = body["messages"]
        if reply.prompt_tokens is not None:
            prompt = reply.prompt_tokens
        else:
            chars = sum(len(_content_text(m.get("content"))) for m in messages if isinstance(m, dict))
            prompt = chars // 4 + 3 * len(messages)
        if reply.completion_tokens is not None:
            completion = reply.completion_tokens
        else:
            produced = reply.text + "".join(c.arguments for c in reply.tool_calls)
            completion = max(1, len(produced) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(reply: Reply) -> str:
        if reply.finish_reason is not None:
            return reply.finish_reason
        return "tool_calls" if reply.tool_calls else "stop"

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if (reply.text or not reply.tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._tool_call_id(call),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(reply),
                }
            ],
            "usage": self._usage(body, reply),
            "service_tier": "default",
            "system_fingerprint": None,
        }

    @staticmethod
    def _chunk_factory(
        model: str, *, include_usage: bool
    ) -> Callable[[dict[str, Any], str | None], dict[str, Any]]:
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def make(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                chunk["usage"] = None
            return chunk

        return make

    @staticmethod
    async def _begin_sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
        )
        await response.prepare(request)
        return response

    async def _stream_reply(
        self, request: web.Request, body: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        model = reply.model or body["model"]
        make = self._chunk_factory(model, include_usage=include_usage)

        events: list[dict[str, Any]] = [make({"role": "assistant", "content": "", "refusal": None}, None)]
        events += [make({"reasoning_content": p}, None) for p in _split(reply.reasoning, reply.chunk_chars)]
        events += [make({"content": piece}, None) for piece in _split(reply.text, reply.chunk_chars)]
        for index, call in enumerate(reply.tool_calls):
            head = {
                "index": index,
                "id": self._tool_call_id(call),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(make({"tool_calls": [head]}, None))
            for piece in _fragments(call.arguments, _TOOL_ARG_FRAGMENTS):
                events.append(
                    make({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
                )
        events.append(make({}, self._finish_reason(reply)))
        if include_usage:
            final = make({}, None)
            final["choices"] = []
            final["usage"] = self._usage(body, reply)
            events.append(final)

        response = await self._begin_sse(request)
        try:
            for number, event in enumerate(events):
                if number and reply.chunk_delay > 0 and await self._pause(reply.chunk_delay):
                    if request.transport is not None:
                        request.transport.close()  # shutting down: cut the stream short
                    return response
                await response.write(_sse(event))
            await response.write(_sse("[DONE]"))
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away mid-stream; nothing left to do
        return response

    async def _stall(self, request: web.Request, body: dict[str, Any], item: Stall) -> web.StreamResponse:
        make = self._chunk_factory(body["model"], include_usage=False)
        response = await self._begin_sse(request)
        with contextlib.suppress(ConnectionError):
            await response.write(_sse(make({"role": "assistant", "content": "", "refusal": None}, None)))
            await response.write(_sse(make({"content": item.text}, None)))
            await self._closing.wait()
        if request.transport is not None:
            request.transport.close()
        return response

    async def _disconnect(
        self, request: web.Request, body: dict[str, Any], item: Disconnect, *, stream: bool
    ) -> web.StreamResponse:
        partial = item.text[: max(0, item.after_chars)]
        if stream:
            make = self._chunk_factory(body["model"], include_usage=False)
            response = await self._begin_sse(request)
            payload = _sse(make({"role": "assistant", "content": "", "refusal": None}, None))
            payload += b"".join(_sse(make({"content": piece}, None)) for piece in _split(partial, 4))
        else:
            # Announce the whole body, then send only part of it.
            full = json.dumps(self._completion(body, Reply(text=item.text))).encode()
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = len(full)
            await response.prepare(request)
            payload = full[: max(1, len(full) // 2)]
        with contextlib.suppress(ConnectionError):
            await response.write(payload)
        transport = request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then drops the connection
        return response

    # ------------------------------------------------------------------ moderations

    def _scores_for(self, texts: list[str]) -> dict[str, float]:
        scores = dict.fromkeys(MODERATION_CATEGORIES, _DEFAULT_SCORE)
        haystacks = [t.lower() for t in texts]
        for needle, categories in self.moderation_flags.items():
            if any(needle.lower() in hay for hay in haystacks):
                for category, score in categories.items():
                    scores[category] = max(scores.get(category, _DEFAULT_SCORE), score)
        return scores

    @staticmethod
    def _moderation_result(scores: dict[str, float], *, has_text: bool, has_image: bool) -> dict[str, Any]:
        categories = {c: s >= _FLAG_THRESHOLD for c, s in scores.items()}
        applied: dict[str, list[str]] = {}
        for category in MODERATION_CATEGORIES:
            kinds = ["text"] if has_text else []
            if has_image and category in _IMAGE_CATEGORIES:
                kinds.append("image")
            applied[category] = kinds
        return {
            "flagged": any(categories.values()),
            "categories": categories,
            "category_scores": scores,
            "category_applied_input_types": applied,
        }

    async def _moderations(self, request: web.Request) -> web.Response:
        if self.moderation_delay:
            await self._pause(self.moderation_delay)
        if self.moderation_script:
            item = self.moderation_script.pop(0)
            if isinstance(item, Hang):
                return await self._hang(item)
            return _error_response(
                item.status, item.message, code=item.code, type_=item.type, retry_after=item.retry_after
            )
        body = await self._json_object(request)
        if body is None:
            return _bad_request("We could not parse the JSON body of your request.")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            return _bad_request("'model' must be a string", param="model")
        data = body.get("input")
        results: list[dict[str, Any]]
        if isinstance(data, str):
            results = [self._moderation_result(self._scores_for([data]), has_text=True, has_image=False)]
        elif isinstance(data, list) and data and all(isinstance(x, str) for x in data):
            results = [
                self._moderation_result(self._scores_for([text]), has_text=True, has_image=False)
                for text in data
            ]
        elif isinstance(data, list) and data:
            texts: list[str] = []
            images: list[str] = []
            for part in data:
                if isinstance(part, str):
                    texts.append(part)
                elif (
                    isinstance(part, dict)
                    and part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                ):
                    texts.append(part["text"])
                elif isinstance(part, dict) and part.get("type") == "image_url":
                    image = part.get("image_url")
                    url = image.get("url") if isinstance(image, dict) else None
                    if not isinstance(url, str):
                        return _bad_request("image_url parts need image_url.url", param="input")
                    images.append(url)
                else:
                    return _bad_request("Invalid moderation input part", param="input")
            scores = self._scores_for(texts + images)
            results = [self._moderation_result(scores, has_text=bool(texts), has_image=bool(images))]
        else:
            return _bad_request("'input' must be a string or a non-empty array", param="input")
        return web.json_response(
            {
                "id": f"modr-{uuid.uuid4().hex[:24]}",
                "model": model or _DEFAULT_MODERATION_MODEL,
                "results": results,
            }
        )

    # ------------------------------------------------------------------ images

    async def _image_generations(self, request: web.Request) -> web.Response:
        if self.image_script:
            item = self.image_script.pop(0)
            if isinstance(item, Hang):
                return await self._hang(item)
            return _error_response(
                item.status, item.message, code=item.code, type_=item.type, retry_after=item.retry_after
            )
        body = await self._json_object(request)
        if body is None:
            return _bad_request("We could not parse the JSON body of your request.")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return _bad_request("'prompt' must be a non-empty string", param="prompt")
        n = body.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            return _bad_request("'n' must be an integer between 1 and 10", param="n")
        size = body.get("size") or "auto"
        if not isinstance(size, str):
            return _bad_request("'size' must be a string", param="size")
        dims = (1024, 1024) if size == "auto" else _parse_size(size)
        if dims is None:
            return _bad_request(f"Invalid size '{size}'", param="size")
        quality = body.get("quality") or "auto"
        if not isinstance(quality, str):
            return _bad_request("'quality' must be a string", param="quality")
        width, height = dims
        seed = zlib.crc32(prompt.encode())
        png = png_bytes(width, height, (seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF))
        encoded = base64.b64encode(png).decode("ascii")
        item_data: dict[str, Any] = {"revised_prompt": prompt}
        if body.get("response_format") == "url":
            item_data["url"] = f"data:image/png;base64,{encoded}"
        else:
            item_data["b64_json"] = encoded
        resolved_quality = "medium" if quality in ("auto", "standard", "hd") else quality
        per_image = _IMAGE_TOKENS.get(resolved_quality, _IMAGE_TOKENS["medium"])
        per_image = max(1, per_image * width * height // (1024 * 1024))
        input_tokens = max(1, len(prompt) // 4)
        output_tokens = per_image * n
        return web.json_response(
            {
                "created": int(time.time()),
                "data": [dict(item_data) for _ in range(n)],
                "background": "opaque",
                "output_format": "png",
                "quality": resolved_quality,
                "size": f"{width}x{height}",
                "usage": {
                    "input_tokens": input_tokens,
                    "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
                    "output_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
            }
        )


def _parse_size(size: str) -> tuple[int, int] | None:
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        return None
    w, h = int(width), int(height)
    if not (0 < w <= 4096 and 0 < h <= 4096):
        return None
    return w, h
