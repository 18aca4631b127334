"""The log format an operator's collector reads (bots/logs.py)."""

from __future__ import annotations

import io
import json
import logging
import warnings

import pytest

from bots import logs


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_json_lines_carry_fields_and_exceptions(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", out)
    log = logging.getLogger("threadwise.test")
    log.info("turn %s %s", "e1", "answered", extra={"fields": {"outcome": "answered", "duration_ms": 12}})
    log.debug("not at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "turn e1 answered" and first["level"] == "INFO"
    assert first["logger"] == "threadwise.test" and first["time"].endswith("+00:00")
    assert (first["outcome"], first["duration_ms"]) == ("answered", 12)
    assert second["message"] == "it failed" and "ValueError: boom" in second["exception"]
    assert third["level"] == "WARNING" and "deprecated thing" in third["message"]


def test_text_for_a_person_shows_fields_as_key_value(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", "text", out)
    logging.getLogger("x").info("turn done", extra={"fields": {"outcome": "failed", "reason": "RateLimited"}})
    assert out.getvalue().rstrip().endswith("INFO x: turn done outcome=failed reason=RateLimited")


def test_a_pipe_gets_json_unless_told_otherwise(restore_logging: None) -> None:
    out = io.StringIO()  # not a terminal
    logs.configure("INFO", None, out)
    logging.getLogger("y").info("hello")
    assert json.loads(out.getvalue())["message"] == "hello"


def test_debug_is_for_our_code_not_the_sdks_bodies(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("DEBUG", "json", out)
    logging.getLogger("core.turn.pipeline").debug("ours")
    logging.getLogger("openai._base_client").debug("Request options: {'json_data': {'messages': 'secret'}}")
    logging.getLogger("slack_sdk.web.async_base_client").debug("Sending a request - body: secret")
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["ours"]
