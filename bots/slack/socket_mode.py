"""Slack over Socket Mode (SLACK_APP_TOKEN): the handler that validates payloads like HTTP mode does, and its
readiness. Imported only when Socket Mode is used (HTTP mode loads none of its SDK pieces)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bots.slack.payloads import socket_payload


class CheckedSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode with the same payload validation as HTTP (bots/slack/payloads.py) before bolt reads it."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.time()
        verdict = socket_payload(req.type, req.payload)
        if verdict.payload is None:  # acknowledged (with the answer, if any) and not dispatched
            body = json.dumps(verdict.answer) if verdict.answer else ""
            answer = BoltResponse(status=200, body=body, headers={"content-type": "application/json"})
            await send_async_response(client, req, answer, started)
            return
        req.payload = verdict.payload
        await super().handle(client, req)


def socket_status(client: SocketModeClient) -> Callable[[], Awaitable[str | None]]:
    """Readiness of Socket Mode: the websocket is open and answers pings (no call to Slack)."""

    async def status() -> str | None:
        if await client.is_connected():
            return None
        return "the Socket Mode connection is down (reconnecting)"

    return status
