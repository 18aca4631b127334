"""The provider's errors as messages a chat user understands (details stay in the log, never in chat)."""

from __future__ import annotations

import math
from datetime import timedelta

import openai

from core.domain.clock import humanize
from core.domain.errors import BadInput, BotError, ContentBlocked, LLMUnavailable, RateLimited


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_openai_error(exc: openai.OpenAIError, model: str) -> BotError:
    """Translate an SDK error into the message a chat user should see (details go to the log)."""
    detail = f"{type(exc).__name__}: {exc}"
    code = getattr(exc, "code", None)
    if isinstance(exc, openai.APITimeoutError):
        return LLMUnavailable("The AI model took too long to answer. Please try again.", detail=detail)
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnavailable(
            "I can't reach the AI provider right now. Please try again shortly.", detail=detail
        )
    if isinstance(exc, openai.RateLimitError):
        if code == "insufficient_quota":
            return LLMUnavailable(
                "The AI provider account behind this bot has run out of credit. An admin needs to top it up.",
                detail=detail,
            )
        after = _retry_after(exc)
        wait = (
            f" in about {humanize(timedelta(seconds=max(1, math.ceil(after))))}" if after else " in a minute"
        )
        return RateLimited(
            f"The AI provider is busy and rate-limiting this bot. Please try again{wait}.",
            retry_after=after,
            detail=detail,
        )
    if isinstance(exc, openai.BadRequestError):
        if code == "context_length_exceeded":
            return BadInput(
                "This conversation is too long for the model. Start a new thread (or reset this one).",
                detail=detail,
            )
        if code in ("content_policy_violation", "content_filter"):
            return ContentBlocked(detail=detail)
        return LLMUnavailable(
            "The AI provider rejected the request. An admin can find details in the logs.", detail=detail
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return LLMUnavailable(
            "The AI provider rejected this bot's credentials. An admin needs to check OPENAI_API_KEY.",
            detail=detail,
        )
    if isinstance(exc, openai.NotFoundError):
        return BadInput(f"The model {model!r} is not available from the AI provider.", detail=detail)
    if isinstance(exc, openai.InternalServerError) or (
        isinstance(exc, openai.APIStatusError) and exc.status_code >= 500
    ):
        return LLMUnavailable(
            "The AI provider is having problems right now. Please try again in a few minutes.", detail=detail
        )
    return LLMUnavailable(detail=detail)
