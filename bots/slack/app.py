"""The Slack adapter: a slack-bolt AsyncApp wired to the core, served over Socket Mode (SLACK_APP_TOKEN) or as
``POST /slack/events`` on the service's own aiohttp server (SLACK_SIGNING_SECRET). Never ``app.start()``."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bots.api_calls import counting, slack_method
from bots.http import HttpServer
from bots.inflight import InFlight
from bots.services import ChatServices
from bots.slack.assistant import build_assistant
from bots.slack.commands import SlashCommands
from bots.slack.config import SlackOptions
from bots.slack.events import Conversations
from bots.slack.files import FileFetcher, FileLimits
from bots.slack.identity import Directory
from bots.slack.payloads import DELIVERY, judge, socket_payload
from bots.slack.replier import EDIT_INTERVAL, SlackResolver
from bots.slack.verify import Refused, SignatureCheck
from core.guards.modlog import ModerationNotice
from core.settings import SettingsError

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
RATE_LIMIT_RETRIES = 3  # 429s retried after Slack's Retry-After
RELAYED_HEADERS = ("X-Slack-Retry-Num", "X-Slack-Retry-Reason")  # what bolt sees of the request's headers


class _TokenFromEnvironment(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment even when given a client, and warns at every start
    that the client wins. Our client is built from that very token (with SLACK_API_URL), so that warning
    is no news to an operator: it is dropped, and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("threadwise.slack.bolt")
    if not any(isinstance(existing, _TokenFromEnvironment) for existing in logger.filters):
        logger.addFilter(_TokenFromEnvironment())
    return logger


def build_app(
    services: ChatServices,
    options: SlackOptions,
    session: aiohttp.ClientSession,
    background: InFlight,
    *,
    edit_interval: float = EDIT_INTERVAL,
) -> AsyncApp:
    """The bolt app with every listener the manifest subscribes to (an event without one answers 404)."""
    slack = options
    if slack.bot_token is None:
        raise SettingsError("SLACK_BOT_TOKEN is required for Slack")
    token = slack.bot_token.get_secret_value()
    client = AsyncWebClient(
        token=token,
        base_url=slack.api_url,
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
        logger=logging.getLogger("threadwise.slack.web"),
    )
    signing_secret = slack.signing_secret.get_secret_value() if slack.signing_secret else ""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        name="threadwise",
        # listeners only ack and hand work to `background`, so answering after them is still immediate, and
        # no work is left in bolt's untracked tasks
        process_before_response=True,
        # POST /slack/events verifies signatures itself, before parsing (bots/slack/verify.py); bolt's check
        # would come after its parse and log refused bodies in full
        request_verification_enabled=False,
        logger=_bolt_logger(),
    )
    fetcher = FileFetcher(
        session,
        client,
        token=token,
        api_url=slack.api_url,
        limits=FileLimits(max_files=options.max_files, max_bytes=options.max_file_bytes),
        documents=services.documents,
    )
    directory = Directory(client, admins=options.admins)
    conversations = Conversations(
        services, client, directory, fetcher, background, edit_interval=edit_interval
    )
    app.assistant(build_assistant(conversations))
    conversations.register(app)
    SlashCommands(conversations).register(app)
    return app


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


def events_route(app: AsyncApp, gate: SignatureCheck) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``POST /slack/events``: size and signature checked on the raw bytes first, then the payload validated
    (bots/slack/payloads.py), then bolt with a body rebuilt from the validated values."""

    async def slack_events(request: web.Request) -> web.Response:
        try:
            signed = await gate.check(request)
        except Refused as refused:
            log.debug("Slack request refused: %s", refused.reason)  # never the body
            return web.json_response({"error": refused.reason}, status=refused.status)
        verdict = judge(signed.body, request.content_type)
        if verdict.body is None:  # answered here: bolt never sees what did not validate
            return web.json_response(verdict.answer or {}, status=verdict.status)
        headers = {name: request.headers[name] for name in RELAYED_HEADERS if name in request.headers}
        bolt_request = AsyncBoltRequest(
            body=verdict.body,
            query=request.query_string,
            headers={**headers, "Content-Type": verdict.content_type},
            context={DELIVERY: signed.signature},
        )
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    return slack_events


async def signed_in() -> str | None:
    """Readiness of HTTP mode: ``auth.test`` accepted the token at start, and Slack posts events to us."""
    return None


def socket_status(client: SocketModeClient) -> Callable[[], Awaitable[str | None]]:
    """Readiness of Socket Mode: the websocket is open and answers pings (no call to Slack)."""

    async def status() -> str | None:
        if await client.is_connected():
            return None
        return "the Socket Mode connection is down (reconnecting)"

    return status


@contextlib.asynccontextmanager
async def open_slack(
    services: ChatServices,
    options: SlackOptions,
    http: HttpServer,
    *,
    edit_interval: float = EDIT_INTERVAL,
    background: InFlight | None = None,
) -> AsyncIterator[None]:
    """The adapter is up inside the block: connected over Socket Mode, or its route added to ``http.app``.

    On exit it stops taking events, gives running turns ``options.drain_seconds`` (THREADWISE_DRAIN_SECONDS)
    to finish, and cancels the rest (each cancelled turn shows that it was interrupted).
    """
    slack = options
    tasks = background if background is not None else InFlight("Slack")
    trace = counting(services.turns.metrics, "slack", lambda _method, url: slack_method(url))
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        app = build_app(services, options, session, tasks, edit_interval=edit_interval)
        try:
            identity = await app.client.auth_test()  # a wrong token stops start-up with a clear message
        except SlackApiError as exc:
            raise SettingsError(
                f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}): use the app's Bot User OAuth "
                "Token (xoxb-…) from OAuth & Permissions"
            ) from None
        log.info("Slack bot %s in workspace %s", identity.get("user_id"), identity.get("team"))
        modlog_channel = options.modlog_channel
        if modlog_channel:

            async def post_notice(notice: ModerationNotice) -> None:
                text = notice.describe(user=f"<@{notice.user_id}>", channel=f"<#{notice.channel_id}>")
                await app.client.chat_postMessage(
                    channel=modlog_channel, text=f":triangular_flag_on_post: {text}"
                )

            services.modlog.register("slack", post_notice)
        services.recovery.register("slack", SlackResolver(app.client))
        try:
            if slack.app_token is not None:
                handler = CheckedSocketModeHandler(
                    app, app_token=slack.app_token.get_secret_value(), web_client=app.client
                )
                await handler.connect_async()  # type: ignore[no-untyped-call]
                log.info("Slack connected over Socket Mode")
                http.readiness.add("slack", socket_status(handler.client))
                try:
                    yield
                finally:
                    http.readiness.remove("slack")
                    await handler.close_async()  # type: ignore[no-untyped-call]
            else:
                if slack.signing_secret is None:
                    raise SettingsError(
                        "Slack needs SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP events)"
                    )

                http.app.router.add_post(
                    EVENTS_PATH, events_route(app, SignatureCheck(slack.signing_secret.get_secret_value()))
                )
                log.info("Slack events accepted at POST %s", EVENTS_PATH)
                http.readiness.add("slack", signed_in)  # auth.test succeeded above; events come to us
                try:
                    yield
                finally:
                    http.readiness.remove("slack")
        finally:
            await tasks.close(options.drain_seconds)
            await services.modlog.drain()  # notices of the last turns, while the client can still post
            services.modlog.unregister("slack")
