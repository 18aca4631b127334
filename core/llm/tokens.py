"""Exact token counts with tiktoken, context windows per model, and an offline fallback estimate."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import tiktoken
import tiktoken.load
import tiktoken.registry

from core.llm import ranks_cache

log = logging.getLogger(__name__)

_PIECES = re.compile(r"\d{1,3}|[^\W\d_]+|[^\w\s]|\s+")

ESTIMATE = "estimate"
DEFAULT_ENCODING = "o200k_base"

# Per-message framing of the chat format (role, separators), the extra token of a `name`, and the tokens that
# prime the assistant's reply, as OpenAI documents them for the gpt-4o/gpt-4.1/gpt-5 families.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOKENS_PER_TOOL_CALL = 3

# Context windows (input + output) by model-name prefix; the longest matching prefix wins.
CONTEXT_WINDOWS: Mapping[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "chatgpt-4o": 128_000,
}
UNKNOWN_MODEL_WINDOW = 8_192

# Image input tokens: base + per 512 px tile at high detail (gpt-4o-mini bills images at a higher token rate).
IMAGE_TOKENS: Mapping[str, tuple[int, int]] = {"gpt-4o-mini": (2_833, 5_667)}
DEFAULT_IMAGE_TOKENS = (85, 170)


def context_window(model: str, overrides: Mapping[str, int] | None = None) -> int:
    table = {**CONTEXT_WINDOWS, **(overrides or {})}
    if model in table:
        return table[model]
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else UNKNOWN_MODEL_WINDOW


def image_tokens(model: str, width: int | None, height: int | None, detail: str = "auto") -> int:
    """Tokens of one image input, by OpenAI's tiling rule; ``auto`` is counted as ``high`` (worst case)."""
    base, per_tile = next(
        (cost for prefix, cost in IMAGE_TOKENS.items() if model.startswith(prefix)), DEFAULT_IMAGE_TOKENS
    )
    if detail == "low":
        return base
    # Unknown size: assume the most tiles an image can take (2048 x 768 after scaling: 4 x 2 tiles).
    w, h = (float(width), float(height)) if width and height else (2048.0, 768.0)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return base + per_tile * tiles


_PARSERS_LOCK = threading.Lock()


@functools.cache
def load_encoding(name: str) -> tiktoken.Encoding:
    """tiktoken's encoding ``name``, built once per process, without tiktoken's Python copy of its ranks.

    tiktoken keeps that dict (about 27 MB resident for o200k_base) only to pickle an encoding: encoding and
    decoding use the native tables built from it. So the encoding is made here from the registry's
    constructor and the dict is emptied once the native tables hold it; ``tiktoken.get_encoding`` (which
    keeps it) is the fallback should the registry look different. The constructor's ranks come from
    ``ranks_cache.parsed_ranks`` (the same file, the same check, parsed once per file and cached).
    """
    tiktoken.list_encoding_names()  # fills the registry's constructors (and raises as get_encoding would)
    constructors = tiktoken.registry.ENCODING_CONSTRUCTORS
    if not isinstance(constructors, dict) or name not in constructors:
        return tiktoken.get_encoding(name)
    spec = _with_cached_ranks(constructors[name])
    encoding = tiktoken.Encoding(**spec)
    ranks = spec.get("mergeable_ranks")
    if isinstance(ranks, dict):
        ranks.clear()
    return encoding


def _with_cached_ranks(constructor: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``constructor()`` (tiktoken_ext's, which names its file and hash) with its module's
    ``load_tiktoken_bpe`` swapped for ``parsed_ranks`` (same arguments, same result) while it runs; called
    as it is when that module is laid out otherwise."""
    namespace = getattr(constructor, "__globals__", {})
    if namespace.get("load_tiktoken_bpe") is not tiktoken.load.load_tiktoken_bpe:
        return constructor()
    with _PARSERS_LOCK:
        namespace["load_tiktoken_bpe"] = ranks_cache.parsed_ranks
        try:
            return constructor()
        finally:
            namespace["load_tiktoken_bpe"] = tiktoken.load.load_tiktoken_bpe


@functools.lru_cache(maxsize=256)
def _encoding_name(model: str) -> str:
    """tiktoken's encoding for ``model`` (its own prefix table), else the default; asked for every text
    counted, so remembered per model name."""
    try:
        return str(tiktoken.encoding_name_for_model(model))
    except KeyError:
        return DEFAULT_ENCODING


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class TokenCounter:
    """Counts tokens of chat messages for a model. Thread-safe; encodings load once and are shared."""

    def __init__(self) -> None:
        self._encodings: dict[str, tiktoken.Encoding | None] = {}
        self._lock = threading.Lock()

    @staticmethod
    def encoding_name(model: str) -> str:
        return _encoding_name(model)

    def loaded(self) -> tuple[str, ...]:
        """The encodings whose tables this counter holds (those known to be missing left out)."""
        return tuple(name for name, encoding in self._encodings.items() if encoding is not None)

    def _encoding(self, name: str) -> tiktoken.Encoding | None:
        if name in self._encodings:
            return self._encodings[name]
        # On an event loop, never wait for another thread's load (a download that may take long): count
        # with the conservative estimate until it is there. Turns load their model's encoding beforehand,
        # off the loop (``preload``), so they count exactly whenever the tables can be had.
        if not self._lock.acquire(blocking=not _on_event_loop()):
            return None
        try:
            if name not in self._encodings:
                try:
                    started = time.perf_counter()
                    self._encodings[name] = load_encoding(name)
                    log.info("token tables of %s loaded in %.2f s", name, time.perf_counter() - started)
                except Exception as exc:  # network, cache, or hash failure: all mean "no tables here"
                    log.warning(
                        "tiktoken encoding %s could not be loaded (%s: %s); token counts are conservative "
                        "estimates until it is available. For offline use set TIKTOKEN_CACHE_DIR to a folder "
                        "holding tiktoken's cache files.",
                        name,
                        type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "",
                    )
                    self._encodings[name] = None
        finally:
            self._lock.release()
        return self._encodings[name]

    async def preload(self, model: str, limit_seconds: float = 15.0) -> str:
        """Load the model's encoding off the event loop; returns what counts will use (or ``estimate``)."""
        name = self.encoding_name(model)
        if name in self._encodings:  # loaded (or known to be missing): no thread hop on every turn
            return self.encoding_for(model)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._encoding, name), limit_seconds)
        except TimeoutError:
            log.warning("loading tiktoken encoding %s timed out; token counts are estimates for now", name)
            return ESTIMATE
        return self.encoding_for(model)

    async def preload_all(self, models: Iterable[str], limit_seconds: float = 15.0) -> tuple[str, ...]:
        """Loads the encodings of every model in ``models`` (each distinct one once), off the event loop,
        one after the other; returns the names of the encodings held afterwards.

        tiktoken builds an encoding's native tables holding the interpreter (for ``o200k_base`` about 0.1 s
        of one idle core, up to a second under load), so a service loads what its models need before it
        serves anyone, rather than in the middle of a turn while other users' events wait."""
        for model in dict.fromkeys(models):
            await self.preload(model, limit_seconds)
        return self.loaded()

    def encoding_for(self, model: str) -> str:
        """The name of the encoding counts for ``model`` use: a tiktoken name or ``estimate``."""
        name = self.encoding_name(model)
        return name if self._encoding(name) is not None else ESTIMATE

    def count_text(self, model: str, text: str) -> int:
        encoding = self._encoding(self.encoding_name(model))
        if encoding is None:
            # Never below the real count: one token per 2.5 UTF-8 bytes (long words, CJK) or one per digit
            # group, word, punctuation mark and run of spaces (numbers, JSON, timestamps), whichever is more.
            return max(math.ceil(len(text.encode("utf-8")) / 2.5), len(_PIECES.findall(text)))
        return len(encoding.encode(text, disallowed_special=()))

    def truncate(self, model: str, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that counts at most ``max_tokens`` (``text`` itself if it fits)."""
        if self.count_text(model, text) <= max_tokens:
            return text
        encoding = self._encoding(self.encoding_name(model))
        if encoding is not None:
            return str(encoding.decode(encoding.encode(text, disallowed_special=())[: max(0, max_tokens)]))
        low, high = 0, len(text)  # offline: the longest prefix whose estimate fits
        while low < high:
            middle = (low + high + 1) // 2
            if self.count_text(model, text[:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low]

    def count_message(
        self, model: str, message: Mapping[str, Any], image_sizes: list[tuple[int, int]]
    ) -> int:
        """Tokens one chat message adds to a prompt, framing included.

        ``message`` is in the Chat Completions wire shape; ``image_sizes`` gives the (width, height) of its
        image parts in order, since the wire form carries only their data URLs.
        """
        total = TOKENS_PER_MESSAGE + self.count_text(model, str(message.get("role", "")))
        content = message.get("content")
        images = iter(image_sizes)
        if isinstance(content, str):
            total += self.count_text(model, content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    total += self.count_text(model, str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    width, height = next(images, (0, 0))
                    detail = str(part.get("image_url", {}).get("detail", "auto"))
                    total += image_tokens(model, width or None, height or None, detail)
        if message.get("name"):
            total += TOKENS_PER_NAME + self.count_text(model, str(message["name"]))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            total += TOKENS_PER_TOOL_CALL + self.count_text(model, str(function.get("name", "")))
            total += self.count_text(model, str(function.get("arguments", "")))
        if message.get("tool_call_id"):
            total += self.count_text(model, str(message["tool_call_id"]))
        return total
