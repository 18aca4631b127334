"""Which failed model requests are tried again and after how long: the openai SDK's rules, on errors built as
the SDK builds them (retries inside the deadlines run in tests/integration/test_deadlines.py)."""

from __future__ import annotations

import httpx2
import openai
import pytest

from core.llm.retries import MAX_DELAY, retry_delay

REQUEST = httpx2.Request("POST", "http://x/v1/chat/completions")


def status_error(status: int, **headers: str) -> openai.APIStatusError:
    response = httpx2.Response(
        status, headers={k.replace("_", "-"): v for k, v in headers.items()}, request=REQUEST
    )
    return openai.APIStatusError("fake", response=response, body=None)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_transient_statuses_are_retried_with_growing_backoff(status: int) -> None:
    delays = [retry_delay(status_error(status), taken) for taken in range(6)]
    assert all(d is not None and 0 < d <= MAX_DELAY for d in delays)
    assert delays[0] is not None and delays[0] <= 0.5 and delays[-1] is not None and delays[-1] > 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_request_errors_are_not_retried(status: int) -> None:
    assert retry_delay(status_error(status), 0) is None


def test_retry_after_is_obeyed_and_a_too_long_one_is_not_waited_for() -> None:
    assert retry_delay(status_error(429, retry_after="3"), 0) == 3
    assert retry_delay(status_error(429, retry_after_ms="250"), 0) == 0.25
    assert retry_delay(status_error(429, retry_after="600"), 0) is None


def test_the_servers_own_verdict_wins() -> None:
    assert retry_delay(status_error(503, x_should_retry="false"), 0) is None
    assert retry_delay(status_error(400, x_should_retry="true"), 0) is not None


def test_connection_errors_and_timeouts_are_retried() -> None:
    assert retry_delay(openai.APITimeoutError(request=REQUEST), 0) is not None
    assert retry_delay(openai.APIConnectionError(request=REQUEST), 1) is not None
