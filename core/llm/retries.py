"""Which failed model requests are tried again, and after how long (the openai SDK's policy, kept here so a
retry is never started when it could not finish before the call's deadline)."""

from __future__ import annotations

import math
import random

import openai

INITIAL_DELAY = 0.5  # seconds before the first retry; doubled each time
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 120.0  # a longer Retry-After is not waited for


def retry_delay(exc: openai.OpenAIError, retries_taken: int) -> float | None:
    """Seconds to wait before trying ``exc``'s request again; None when it is not worth retrying: the
    SDK's rules (connection errors, timeouts, 408, 409, 429, 5xx; ``x-should-retry`` and ``Retry-After``
    obeyed)."""
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return _backoff(retries_taken)
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    after = _retry_after(headers.get("retry-after-ms"), 1000) or _retry_after(headers.get("retry-after"), 1)
    if after is not None and after > MAX_RETRY_AFTER:
        return None
    verdict = headers.get("x-should-retry")
    retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
    if verdict == "false" or (verdict != "true" and not retryable):
        return None
    return after if after is not None and after > 0 else _backoff(retries_taken)


def _retry_after(value: str | None, divisor: int) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value) / divisor
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else MAX_RETRY_AFTER + 1


def _backoff(retries_taken: int) -> float:
    delay = min(INITIAL_DELAY * 2.0 ** min(retries_taken, 32), MAX_DELAY)
    return delay * (1 - 0.25 * random.random())  # jitter
