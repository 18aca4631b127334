"""Errors a chat user may see. Adapters render ``user_message``; nothing else of an error reaches chat."""

from __future__ import annotations


class BotError(Exception):
    """Base of every error that ends a turn with a message for the user."""

    default_message = "Something went wrong while answering. Please try again."

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail  # for logs only, never shown in chat
        super().__init__(detail or self.user_message)


class QuotaExceeded(BotError):
    default_message = "Your usage limit has been reached."


class RateLimited(BotError):
    default_message = "Too many requests right now. Please wait a moment and try again."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(user_message, detail=detail)
        self.retry_after = retry_after


class ContentBlocked(BotError):
    default_message = "I can't help with that request."


class NotAuthorized(BotError):
    default_message = "You are not allowed to do that."


class LLMUnavailable(BotError):
    default_message = "The AI model is unavailable right now. Please try again in a few minutes."


class BadInput(BotError):
    default_message = "I couldn't understand that input."


INTERRUPTED_MESSAGE = "This answer was interrupted (the service restarted). Please ask again."


class TurnInterrupted(BotError):
    """The turn was stopped from outside (shutdown) before it could finish."""

    default_message = INTERRUPTED_MESSAGE


class TurnTimedOut(BotError):
    """The whole turn ran past ``THREADWISE_TURN_TIMEOUT``; what was streamed stays above the notice."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"This answer took longer than the {seconds:g} s time limit and was cut off. Please try again.",
            detail=f"turn timeout of {seconds:g} s",
        )
