"""The one OpenAI client of a process: streaming chat completions and error mapping to user messages.

Requests go through the SDK's lower-level ``post`` with a ready JSON body: ``chat.completions.create``
type-transforms every history message on every call, which dominates a turn's CPU cost on long threads
(DESIGN.md §8). Timeouts, auth, SSE parsing and in-stream errors are still the SDK's; the chunks are read as
the JSON they are (``AsyncStream[object]``) rather than built into pydantic models, which cost a tenth of a
turn's CPU for fields never read. The retries of a chat answer are ours, under its deadlines (``LLMClient``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletion

from core.domain.errors import BotError, ContentBlocked
from core.llm.errors import map_openai_error
from core.llm.reasoning import visible_text
from core.llm.retries import retry_delay
from core.llm.types import Completion, ToolCall, Usage
from core.llm.watchdog import Watchdog
from core.metrics import Metrics

log = logging.getLogger(__name__)

OnText = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class LLMClient:
    """Wraps one ``AsyncOpenAI``; every ``openai`` error leaves as a ``BotError`` a chat user understands.

    A chat answer is bounded in time (``Watchdog``): its first delta within ``first_token_timeout`` seconds
    of sending the request, retries included, and every later chunk within as long of the one before. The
    retries of a chat answer are made here (``retries.py``, the SDK's rules) so that none starts after its
    time is up; an attempt waits at most ``timeout`` seconds per step and is cut at the deadlines.
    Other requests on ``sdk`` (moderation, images) keep the SDK's own retries."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        timeout: float = 60.0,
        max_retries: int = 2,
        first_token_timeout: float = 20.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._client = client
        self._timeout = timeout
        self._max_retries = max_retries
        self._first_token = first_token_timeout

    @classmethod
    def create(
        cls,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        first_token_timeout: float = 20.0,
        metrics: Metrics | None = None,
    ) -> LLMClient:
        # A self-hosted OpenAI-compatible endpoint may need no key; the SDK insists on a non-empty one.
        key = api_key or ("unused" if base_url else None)
        if not key:
            raise BotError(
                "OPENAI_API_KEY is not set.",
                detail="OPENAI_API_KEY is required unless OPENAI_BASE_URL points to an endpoint without auth",
            )
        client = AsyncOpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        return cls(
            client,
            timeout=timeout,
            max_retries=max_retries,
            first_token_timeout=first_token_timeout,
            metrics=metrics,
        )

    @property
    def sdk(self) -> AsyncOpenAI:
        return self._client

    async def close(self) -> None:
        await self._client.close()

    async def stream(
        self,
        *,
        model: str,
        messages: Sequence[dict[str, Any]],
        max_output_tokens: int,
        on_text: OnText | None = None,
        tools: Sequence[dict[str, Any]] = (),
        tool_choice: str | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """One streamed chat completion; ``on_text`` receives the full text so far after each delta.
        ``deadline`` (``loop.time()``): when the turn ends; no attempt waits past it, no retry starts."""
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": max_output_tokens,
        }
        if tools:
            body["tools"] = list(tools)
            if tool_choice is not None:
                body["tool_choice"] = tool_choice  # "none": answer now, in words
        started = asyncio.get_running_loop().time()
        watch = Watchdog(self._first_token, self._first_token)
        status = "ok"
        try:
            async with watch:
                stream = await self._open(body, watch, deadline)
                async with stream:
                    return await _collect(stream, model, on_text, watch)
        except openai.OpenAIError as exc:
            error = map_openai_error(exc, model)
            status = type(error).__name__
            raise error from exc
        except BaseException as exc:
            status = type(exc).__name__
            raise
        finally:
            self._measure(model, status, started, watch.first_delta_at)

    def _measure(self, model: str, status: str, started: float, first_delta_at: float | None) -> None:
        if self._metrics is None:
            return
        self._metrics.llm_calls.labels(model, status).inc()
        self._metrics.llm_call_seconds.labels(model).observe(asyncio.get_running_loop().time() - started)
        if first_delta_at is not None:
            self._metrics.first_token_seconds.labels(model).observe(first_delta_at - started)

    async def _open(
        self, body: dict[str, Any], watch: Watchdog, deadline: float | None
    ) -> AsyncStream[object]:
        """The response stream, once its headers came; failed attempts are retried while there is time."""
        loop = asyncio.get_running_loop()
        retries = 0
        while True:
            # An attempt waits at most ``timeout`` per step (connect, each read); the watchdog and the
            # turn's deadline (the pipeline's) cut it sooner when their time is up.
            try:
                return await self._client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=ChatCompletion,
                    stream=True,
                    stream_cls=AsyncStream[object],  # each chunk as its JSON (a dict)
                    options={"timeout": self._timeout, "max_retries": 0},
                )
            except openai.OpenAIError as exc:
                delay = retry_delay(exc, retries) if retries < self._max_retries else None
                late = deadline is not None and loop.time() + (delay or 0.0) >= deadline
                if delay is None or delay >= watch.left() or late:
                    raise
                log.info("model request failed (%s), retry in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                retries += 1


async def _collect(
    stream: AsyncStream[object], model: str, on_text: OnText | None, watch: Watchdog
) -> Completion:
    """The answer of a stream of ``chat.completion.chunk`` objects, as JSON (absent and null fields alike)."""
    text: list[str] = []
    calls: dict[int, _PartialCall] = {}
    finish_reason: str | None = None
    usage: Usage | None = None
    served_model = model
    shown = ""
    async for item in stream:
        chunk: dict[str, Any] = item if isinstance(item, dict) else {}
        served_model = chunk.get("model") or served_model
        counts = chunk.get("usage")
        if counts:
            details = counts.get("prompt_tokens_details") or {}
            usage = Usage(
                prompt_tokens=int(counts.get("prompt_tokens") or 0),
                cached_tokens=int(details.get("cached_tokens") or 0),
                completion_tokens=int(counts.get("completion_tokens") or 0),
            )
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            tool_deltas = delta.get("tool_calls")
            # reasoning_content (thinking, never shown) is progress too: a long think is no stall
            watch.beat(bool(content or tool_deltas or delta.get("reasoning_content")))
            if content:
                text.append(content)
                visible = visible_text("".join(text), final=False)
                if on_text is not None and visible != shown:
                    shown = visible
                    await on_text(visible)
                    watch.beat(True)  # the time shown text took (moderation, edits) is not a stall
            for tool_delta in tool_deltas or ():
                partial = calls.setdefault(int(tool_delta.get("index") or 0), _PartialCall())
                if tool_delta.get("id"):
                    partial.id = tool_delta["id"]
                function = tool_delta.get("function") or {}
                if function.get("name"):
                    partial.name += function["name"]
                if function.get("arguments"):
                    partial.arguments.append(function["arguments"])
            if choice.get("finish_reason"):
                finish_reason = choice["finish_reason"]
    tool_calls = tuple(
        ToolCall(id=p.id or f"call_{index}", name=p.name, arguments="".join(p.arguments))
        for index, p in sorted(calls.items())
    )
    answer = visible_text("".join(text), final=True)
    if finish_reason == "content_filter" and not answer:
        raise ContentBlocked("The AI provider's content filter stopped this answer.")
    return Completion(
        text=answer,
        model=served_model,
        finish_reason=finish_reason,
        usage=usage,
        tool_calls=tool_calls,
    )
