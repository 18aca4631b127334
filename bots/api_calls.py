"""Counts an adapter's calls to its platform's API (``threadwise_platform_api_calls``), by method and HTTP
status, 429s included, from the aiohttp session the SDK uses (a ``TraceConfig``: no SDK internals)."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from yarl import URL

from core.metrics import Metrics

_ID = re.compile(r"^(?:\d{6,}|[A-Za-z0-9_-]{40,})$")  # snowflakes and interaction tokens


def slack_method(url: URL) -> str:
    """``https://slack.com/api/chat.postMessage`` -> ``chat.postMessage``; other hosts (file uploads and
    downloads) -> ``files``."""
    parts = [part for part in url.path.split("/") if part]
    if len(parts) >= 2 and parts[-2] == "api":
        return parts[-1][:64]
    return "files"


def discord_route(method: str, url: URL) -> str:
    """``PATCH /api/v10/channels/123/messages/456`` -> ``PATCH /channels/:id/messages/:id``."""
    parts = [part for part in url.path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api" and parts[1].startswith("v"):
        parts = parts[2:]
    shown = "/".join(":id" if _ID.match(part) else part for part in parts)
    return f"{method} /{shown}"[:96]


def counting(metrics: Metrics, platform: str, label: Callable[[str, URL], str]) -> aiohttp.TraceConfig:
    """A TraceConfig that counts every finished request, and every failed one as status ``error``."""
    trace = aiohttp.TraceConfig()

    async def on_end(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        metrics.platform_calls.labels(
            platform, label(params.method, params.url), str(params.response.status)
        ).inc()

    async def on_error(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        metrics.platform_calls.labels(platform, label(params.method, params.url), "error").inc()

    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_error)
    trace.freeze()
    return trace
