"""Model providers (``THREADWISE_PROVIDERS``): model-name prefixes mapped to OpenAI-compatible endpoints,
parsed and checked when the settings load (no SDK imported here).

``{"llama": {"base_url": "http://localhost:11434/v1", "api_key": ""}, "claude": {...}}``: a model whose name
starts with a prefix goes to that endpoint (the longest matching prefix wins), with the name unchanged and the
entry's ``api_key`` as the bearer token; ``timeout`` (seconds) and ``max_retries`` are optional per entry.
Other models use OPENAI_BASE_URL / OPENAI_API_KEY.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

_KEYS = frozenset({"base_url", "api_key", "timeout", "max_retries"})


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    prefix: str
    base_url: str
    api_key: str = field(default="", repr=False)  # never logged
    timeout: float | None = None  # None: THREADWISE_OPENAI_TIMEOUT
    max_retries: int | None = None  # None: THREADWISE_OPENAI_MAX_RETRIES


def parse_providers_json(text: str) -> tuple[ProviderConfig, ...]:
    """The providers of ``text``; ValueError naming THREADWISE_PROVIDERS and the entry (never a key)."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError(
            'THREADWISE_PROVIDERS must be a JSON object, e.g. {"llama": {"base_url": '
            '"http://localhost:11434/v1", "api_key": ""}}'
        ) from None
    if not isinstance(raw, dict):
        raise ValueError("THREADWISE_PROVIDERS must be a JSON object of model-name prefix -> endpoint")
    return tuple(_entry(prefix, entry) for prefix, entry in raw.items())


def _entry(prefix: str, entry: Any) -> ProviderConfig:
    where = f"THREADWISE_PROVIDERS[{prefix!r}]"
    if not prefix.strip():
        raise ValueError("THREADWISE_PROVIDERS: a model-name prefix cannot be empty")
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object with base_url and api_key")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(sorted(_KEYS))}")
    base_url = entry.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"{where}: base_url must be an http(s) URL, e.g. http://localhost:11434/v1")
    api_key = entry.get("api_key", "")
    if not isinstance(api_key, str):
        raise ValueError(f"{where}: api_key must be a string (may be empty)")
    timeout = entry.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(f"{where}: timeout must be a positive number of seconds")
    retries = entry.get("max_retries")
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10
    ):
        raise ValueError(f"{where}: max_retries must be a whole number from 0 to 10")
    return ProviderConfig(prefix, base_url, api_key, float(timeout) if timeout is not None else None, retries)


def provider_for(model: str, providers: tuple[ProviderConfig, ...]) -> ProviderConfig | None:
    """The provider whose prefix is the longest one ``model`` starts with; None: the default endpoint."""
    matching = [provider for provider in providers if model.startswith(provider.prefix)]
    return max(matching, key=lambda provider: len(provider.prefix)) if matching else None
