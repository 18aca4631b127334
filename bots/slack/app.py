"""The Slack adapter: a slack-bolt AsyncApp wired to the core, served over Socket Mode (SLACK_APP_TOKEN) or as
``POST /slack/events`` on the service's own aiohttp server (SLACK_SIGNING_SECRET). Never ``app.start()``.
Socket Mode's SDK pieces (bots/slack/socket_mode.py) are imported only when it is used."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bots.api_calls import counting, slack_method
from bots.http import HttpServer
from bots.inflight import InFlight
from bots.services import ChatServices
from bots.slack.actions import Actions
from bots.slack.answer_clicks import AnswerClicks
from bots.slack.approvals import ApprovalClicks, SlackApprovalPrompter
from bots.slack.assistant import build_assistant
from bots.slack.commands import SlashCommands
from bots.slack.config import SlackOptions
from bots.slack.events import Conversations
from bots.slack.files import FileLimits
from bots.slack.home import AppHome
from bots.slack.oauth import INSTALL_PATH, REDIRECT_PATH, SlackOAuth, oauth_routes
from bots.slack.payloads import DELIVERY, judge
from bots.slack.replier import EDIT_INTERVAL, NativeStreaming, SlackResolver
from bots.slack.shortcuts import AskShortcut
from bots.slack.verify import Refused, SignatureCheck
from bots.slack.workspaces import Workspaces
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


def build_client(options: SlackOptions, session: aiohttp.ClientSession) -> AsyncWebClient:
    """The Web API client on SLACK_API_URL: with SLACK_BOT_TOKEN, or without a token (OAuth mode: each
    request's client gets its workspace's token, and calls outside a request name theirs)."""
    token = options.bot_token.get_secret_value() if options.bot_token is not None else None
    return AsyncWebClient(
        token=token,
        base_url=options.api_url,
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
        logger=logging.getLogger("threadwise.slack.web"),
    )


def build_oauth(services: ChatServices, options: SlackOptions, client: AsyncWebClient) -> SlackOAuth | None:
    """OAuth mode's parts, or None with SLACK_BOT_TOKEN (one workspace)."""
    if options.bot_token is not None:
        return None
    if not options.oauth or options.client_id is None or options.client_secret is None:
        raise SettingsError(
            "Slack needs SLACK_BOT_TOKEN (one workspace), or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
            "(installs into many workspaces through OAuth)"
        )
    if services.installations is None:
        raise SettingsError("Slack OAuth needs the database's installations")
    return SlackOAuth(
        services.installations,
        client,
        client_id=options.client_id,
        client_secret=options.client_secret.get_secret_value(),
        api_url=options.api_url,
        redirect_uri=options.redirect_uri,
    )


def build_app(
    services: ChatServices,
    options: SlackOptions,
    session: aiohttp.ClientSession,
    background: InFlight,
    *,
    edit_interval: float = EDIT_INTERVAL,
    client: AsyncWebClient | None = None,
    oauth: SlackOAuth | None = None,
) -> AsyncApp:
    """The bolt app with every listener the manifest subscribes to (an event without one answers 404)."""
    slack = options
    client = client if client is not None else build_client(options, session)
    if oauth is None and slack.bot_token is None:
        raise SettingsError("SLACK_BOT_TOKEN is required for Slack")
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
        # OAuth: each request is answered with its own workspace's token (bolt's authorize); one with no
        # installation is refused before any listener runs
        oauth_settings=oauth.settings if oauth is not None else None,
    )
    workspaces = Workspaces(
        session,
        api_url=slack.api_url,
        admins=options.admins,
        limits=FileLimits(max_files=options.max_files, max_bytes=options.max_file_bytes),
        single=client if oauth is None else None,
        documents=services.documents,
    )
    native = NativeStreaming() if options.native_streaming else None
    conversations = Conversations(
        services, workspaces, background, edit_interval=edit_interval, native=native
    )
    app.assistant(build_assistant(conversations))
    conversations.register(app)
    SlashCommands(conversations).register(app)
    AppHome(conversations).register(app)  # the Home tab (app_home_opened -> views.publish)
    AskShortcut(conversations).register(app)  # "Ask Threadwise about this" on any message
    # bolt runs the first listener that matches a click: Approve / Deny (action_id tw:approve|tw:deny,
    # bots/slack/approvals.py) before the router of every other button
    if services.approvals is not None:
        ApprovalClicks(services.approvals, workspaces, background).register(app)
    actions = Actions(workspaces, background)  # button clicks, routed by their action_id's prefix
    actions.route("answer", AnswerClicks(services, conversations))
    actions.register(app)
    if oauth is not None:
        app.enable_token_revocation_listeners()  # uninstalled, or the bot token revoked: tokens deleted
    else:
        app.event("app_uninstalled")(_uninstalled)
        app.event("tokens_revoked")(_uninstalled)
    return app


async def _uninstalled(event: dict[str, Any]) -> None:
    """One workspace (SLACK_BOT_TOKEN): nothing is stored to delete; the token stops working."""
    log.warning("Slack says %s: SLACK_BOT_TOKEN no longer works", event.get("type"))


def modlog_channels(value: str | None, *, oauth: bool) -> dict[str, str]:
    """THREADWISE_SLACK_MODLOG_CHANNEL: ``C0123`` (the workspace of SLACK_BOT_TOKEN), or ``T01:C02,T03:C04``
    (per workspace: each workspace's notices go to its own channel). Keyed by team id, "" for any."""
    channels: dict[str, str] = {}
    for entry in (part.strip() for part in (value or "").split(",")):
        if not entry:
            continue
        team, _, channel = entry.rpartition(":")
        if not channel or (oauth and not team):
            raise SettingsError(
                "THREADWISE_SLACK_MODLOG_CHANNEL: with SLACK_CLIENT_ID (many workspaces) name each "
                "workspace's channel as team:channel, e.g. T0123:C0456,T0789:C0ABC"
            )
        channels[team] = channel
    return channels


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
    """Readiness of HTTP mode: ``auth.test`` accepted the token at start (OAuth: each workspace's token is
    checked as its requests come), and Slack posts events to us."""
    return None


@contextlib.asynccontextmanager
async def open_slack(
    services: ChatServices,
    options: SlackOptions,
    http: HttpServer,
    *,
    edit_interval: float = EDIT_INTERVAL,
    background: InFlight | None = None,
) -> AsyncIterator[None]:
    """The adapter is up inside the block: connected over Socket Mode, or its route added to ``http.app``;
    in OAuth mode (no SLACK_BOT_TOKEN) also ``GET /slack/install`` and ``GET /slack/oauth_redirect``.

    On exit it stops taking events, gives running turns ``options.drain_seconds`` (THREADWISE_DRAIN_SECONDS)
    to finish, and cancels the rest (each cancelled turn shows that it was interrupted).
    """
    slack = options
    tasks = background if background is not None else InFlight("Slack")
    channels = modlog_channels(options.modlog_channel, oauth=options.bot_token is None)
    trace = counting(services.turns.metrics, "slack", lambda _method, url: slack_method(url))
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = build_client(options, session)
        oauth = build_oauth(services, options, client)
        app = build_app(
            services, options, session, tasks, edit_interval=edit_interval, client=client, oauth=oauth
        )
        token_of = oauth.tokens.token if oauth is not None else None
        if oauth is None:
            try:
                identity = await app.client.auth_test()  # a wrong token stops start-up with a clear message
            except SlackApiError as exc:
                raise SettingsError(
                    f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error')}): use the app's Bot User "
                    "OAuth Token (xoxb-…) from OAuth & Permissions"
                ) from None
            log.info("Slack bot %s in workspace %s", identity.get("user_id"), identity.get("team"))
        else:
            log.info("Slack distribution: workspaces install the app at GET %s", INSTALL_PATH)
        if channels:

            async def post_notice(notice: ModerationNotice) -> None:
                channel = channels.get(notice.workspace_id) or channels.get("")
                if channel is None:
                    return
                token = await token_of(notice.workspace_id) if token_of is not None else None
                if token_of is not None and token is None:
                    return  # uninstalled since
                text = notice.describe(user=f"<@{notice.user_id}>", channel=f"<#{notice.channel_id}>")
                extra: dict[str, Any] = {"token": token} if token else {}
                await client.chat_postMessage(
                    channel=channel, text=f":triangular_flag_on_post: {text}", **extra
                )

            services.modlog.register("slack", post_notice)
        services.recovery.register("slack", SlackResolver(client, token_of))
        if services.approvals is not None:
            services.approvals.register("slack", SlackApprovalPrompter(client, token_of))
        if app.oauth_flow is not None:
            install, redirect = oauth_routes(app.oauth_flow)
            http.app.router.add_get(INSTALL_PATH, install)
            http.app.router.add_get(REDIRECT_PATH, redirect)
        try:
            if slack.app_token is not None:
                from bots.slack.socket_mode import CheckedSocketModeHandler, socket_status

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
            if services.approvals is not None:
                services.approvals.unregister("slack")
