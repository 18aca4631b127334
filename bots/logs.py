"""How the process writes its log: one JSON object per line (for log collectors), or text for a person.

``THREADWISE_LOG_FORMAT`` chooses; unset, a terminal gets text and anything else (a container, a pipe, a
file) JSON. A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; a record logged
with ``extra={"fields": {...}}`` adds those fields (e.g. the summary line of every turn); an exception adds
``exception`` (its type and traceback as one string). Python warnings go through the same handler.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Per-run notices and per-request lines (the SDKs' HTTP clients), not operator news.
QUIET = ("alembic", "matplotlib", "httpx", "httpx2")
# The SDKs log request bodies (message text) at DEBUG: THREADWISE_LOG_LEVEL=DEBUG is for our own code.
SDKS = (
    "openai",
    "httpcore",
    "slack_sdk",
    "slack_bolt",
    "threadwise.slack.web",
    "threadwise.slack.bolt",
    "discord",
    "mcp",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({key: value for key, value in fields.items() if key not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The text format, with a record's fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return text


def configure(level: str, log_format: str | None, stream: TextIO | None = None) -> None:
    """Route every log record (and Python warnings) to ``stream`` (stderr) in ``log_format``."""
    stream = stream or sys.stderr
    chosen = log_format or ("text" if stream.isatty() else "json")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    for chatty in QUIET:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    for sdk in SDKS:
        logging.getLogger(sdk).setLevel(max(logging.INFO, root.level))
