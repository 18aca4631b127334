"""Provider errors, built as the ``openai`` SDK builds them, become messages a chat user understands."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from core.domain.errors import BadInput, BotError, ContentBlocked, LLMUnavailable, RateLimited
from core.llm.errors import map_openai_error

MODEL = "gpt-4o-mini"
REQUEST = httpx2.Request("POST", "http://x/v1/chat/completions")

# Provider texts a user must never see (they leak organisation ids, limits and internals).
RATE_LIMIT_TEXT = (
    "Rate limit reached for gpt-4o-mini in organization org-Xy12SECRET on tokens per min (TPM): "
    "Limit 200000, Used 199000, Requested 4000."
)
QUOTA_TEXT = "You exceeded your current quota, please check your plan and billing details. org-Xy12SECRET"
CONTEXT_TEXT = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted in "
    "131072 tokens. Please reduce the length of the messages."
)
AUTH_TEXT = "Incorrect API key provided: sk-proj-****************************abcd."
NOT_FOUND_TEXT = "The model `gpt-4o-mini` does not exist or you do not have access to it."
SERVER_TEXT = "The server had an error while processing your request. Sorry about that! req_0badcafe"
BAD_REQUEST_TEXT = "Invalid value for 'messages[3].content': expected a string, got null. trace=abc123"
POLICY_TEXT = "Your request was rejected as a result of our safety system. flagged=violence/graphic"


def status_error(
    cls: type[openai.APIStatusError],
    status: int,
    message: str,
    *,
    code: str | None = None,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> openai.APIStatusError:
    """As ``openai``'s client does: the message is "Error code: N - <provider message>" and ``body`` is the
    ``error`` object of the response JSON."""
    error: dict[str, Any] = {"message": message, "type": type_, "param": None, "code": code}
    response = httpx2.Response(status, headers=headers or {}, json={"error": error}, request=REQUEST)
    return cls(f"Error code: {status} - {message}", response=response, body=error)


def mapped(exc: openai.OpenAIError, model: str = MODEL) -> BotError:
    result = map_openai_error(exc, model)
    # Whatever the error, the provider's own text goes to the log detail only, never to chat.
    assert str(exc) in (result.detail or "")
    return result


def test_rate_limit_with_retry_after() -> None:
    exc = status_error(
        openai.RateLimitError,
        429,
        RATE_LIMIT_TEXT,
        code="rate_limit_exceeded",
        type_="tokens",
        headers={"retry-after": "7"},
    )

    error = mapped(exc)

    assert type(error) is RateLimited
    assert error.retry_after == 7
    assert "7 seconds" in error.user_message
    assert "try again" in error.user_message
    assert RATE_LIMIT_TEXT not in error.user_message
    assert "org-" not in error.user_message


def test_rate_limit_without_retry_after() -> None:
    exc = status_error(openai.RateLimitError, 429, RATE_LIMIT_TEXT, code="rate_limit_exceeded")

    error = mapped(exc)

    assert type(error) is RateLimited
    assert error.retry_after is None
    assert "minute" in error.user_message
    assert "org-" not in error.user_message


def test_rate_limit_with_unparseable_retry_after() -> None:
    exc = status_error(
        openai.RateLimitError,
        429,
        RATE_LIMIT_TEXT,
        code="rate_limit_exceeded",
        headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )

    error = mapped(exc)

    assert type(error) is RateLimited
    assert error.retry_after is None
    assert "GMT" not in error.user_message


def test_insufficient_quota_says_credit_ran_out() -> None:
    exc = status_error(
        openai.RateLimitError, 429, QUOTA_TEXT, code="insufficient_quota", type_="insufficient_quota"
    )

    error = mapped(exc)

    # Not a "wait and retry" situation: retrying will not help until an admin acts.
    assert type(error) is LLMUnavailable
    assert "credit" in error.user_message
    assert "admin" in error.user_message
    assert QUOTA_TEXT not in error.user_message
    assert "billing details" not in error.user_message


def test_context_length_exceeded_is_bad_input() -> None:
    exc = status_error(openai.BadRequestError, 400, CONTEXT_TEXT, code="context_length_exceeded")

    error = mapped(exc)

    assert type(error) is BadInput
    assert "too long" in error.user_message
    assert "new thread" in error.user_message
    assert "128000" not in error.user_message


def test_content_policy_violation_is_content_blocked() -> None:
    exc = status_error(openai.BadRequestError, 400, POLICY_TEXT, code="content_policy_violation")

    error = mapped(exc)

    assert type(error) is ContentBlocked
    assert error.user_message == ContentBlocked.default_message
    assert "violence" not in error.user_message


def test_other_bad_request_points_to_the_logs() -> None:
    exc = status_error(openai.BadRequestError, 400, BAD_REQUEST_TEXT, code="invalid_value")

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert "rejected the request" in error.user_message
    assert "messages[3]" not in error.user_message


def test_timeout_says_it_took_too_long() -> None:
    exc = openai.APITimeoutError(request=REQUEST)

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert "took too long" in error.user_message
    assert "Request timed out." not in error.user_message


def test_connection_error_says_provider_unreachable() -> None:
    exc = openai.APIConnectionError(message="Connection error: [Errno 111] refused 10.0.0.7", request=REQUEST)

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert "can't reach the AI provider" in error.user_message
    assert "Errno" not in error.user_message
    assert "10.0.0.7" not in error.user_message


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_says_provider_has_problems(status: int) -> None:
    exc = status_error(openai.InternalServerError, status, SERVER_TEXT, code=None, type_="server_error")

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert "having problems" in error.user_message
    assert "req_0badcafe" not in error.user_message


def test_authentication_error_names_the_api_key_variable() -> None:
    exc = status_error(openai.AuthenticationError, 401, AUTH_TEXT, code="invalid_api_key")

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert "OPENAI_API_KEY" in error.user_message
    assert "credentials" in error.user_message
    assert "sk-proj" not in error.user_message


def test_permission_denied_names_the_api_key_variable() -> None:
    exc = status_error(openai.PermissionDeniedError, 403, "Project does not have access to model", code=None)

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert "OPENAI_API_KEY" in error.user_message
    assert "Project does not have access" not in error.user_message


def test_not_found_names_the_model() -> None:
    exc = status_error(
        openai.NotFoundError,
        404,
        NOT_FOUND_TEXT.replace("gpt-4o-mini", "gpt-4o-mnii"),
        code="model_not_found",
    )

    error = mapped(exc, model="gpt-4o-mnii")

    assert type(error) is BadInput
    assert "gpt-4o-mnii" in error.user_message
    assert "not available" in error.user_message
    assert "does not exist or you do not have access" not in error.user_message


def test_unclassified_status_gets_the_generic_unavailable_message() -> None:
    exc = status_error(openai.ConflictError, 409, "conflict on resource res_123", code=None)

    error = mapped(exc)

    assert type(error) is LLMUnavailable
    assert error.user_message == LLMUnavailable.default_message
    assert "res_123" not in error.user_message


def test_user_messages_never_contain_the_provider_text() -> None:
    cases: list[tuple[openai.OpenAIError, str]] = [
        (
            status_error(openai.RateLimitError, 429, RATE_LIMIT_TEXT, headers={"retry-after": "7"}),
            RATE_LIMIT_TEXT,
        ),
        (status_error(openai.RateLimitError, 429, QUOTA_TEXT, code="insufficient_quota"), QUOTA_TEXT),
        (
            status_error(openai.BadRequestError, 400, CONTEXT_TEXT, code="context_length_exceeded"),
            CONTEXT_TEXT,
        ),
        (status_error(openai.BadRequestError, 400, BAD_REQUEST_TEXT), BAD_REQUEST_TEXT),
        (status_error(openai.BadRequestError, 400, POLICY_TEXT, code="content_filter"), POLICY_TEXT),
        (status_error(openai.AuthenticationError, 401, AUTH_TEXT, code="invalid_api_key"), AUTH_TEXT),
        (status_error(openai.NotFoundError, 404, NOT_FOUND_TEXT, code="model_not_found"), NOT_FOUND_TEXT),
        (status_error(openai.InternalServerError, 500, SERVER_TEXT), SERVER_TEXT),
        (openai.APITimeoutError(request=REQUEST), "Request timed out."),
        (openai.APIConnectionError(request=REQUEST), "Connection error."),
    ]

    for exc, provider_text in cases:
        error = mapped(exc)
        assert provider_text not in error.user_message, type(exc).__name__
        assert str(exc) not in error.user_message, type(exc).__name__
        assert "Error code" not in error.user_message
        # What a user sees is a full sentence of its own.
        assert error.user_message.endswith("."), error.user_message
