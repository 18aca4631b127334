"""Slack distribution (OAuth v2): ``GET /slack/install`` sends the installer to Slack's authorize page,
``GET /slack/oauth_redirect`` finishes the install through bolt's AsyncOAuthFlow, and every request is then
answered with the bot token of its own workspace (bolt's authorize over our installation store, with token
rotation). The flow's Web API calls (``oauth.v2.access``, ``auth.test``) and the rotations go to
SLACK_API_URL like every other call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.installations import (
    ROTATE_MINUTES,
    SqlInstallationStore,
    SqlOAuthStateStore,
    TooManyInstalls,
    WorkspaceTokens,
)
from bots.slack.scopes import BOT_SCOPES
from core.admin.installations import Installations

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_TTL = timedelta(minutes=10)  # how long an installer has between /slack/install and the redirect
AUTHORIZE_CACHE = 1_000  # auth.test answers kept, one per bot token (a token's identity never changes)


def authorize_url(api_url: str) -> str:
    """Slack's authorize page next to the Web API base: ``https://slack.com/oauth/v2/authorize`` for
    ``https://slack.com/api/``, and the same place on a proxy or a test fake."""
    return urljoin(api_url, "../oauth/v2/authorize")


class BoundedAuthorize(AsyncInstallationStoreAuthorize):
    """bolt's authorize (the installation of the request's workspace, its token rotated when due), with its
    per-token ``auth.test`` cache kept bounded: tokens rotate, so their number only grows."""

    async def __call__(self, **kwargs: Any) -> AuthorizeResult | None:
        if len(self.authorize_result_cache) >= AUTHORIZE_CACHE:
            self.authorize_result_cache.clear()
        result: AuthorizeResult | None = await super().__call__(**kwargs)
        return result


class SlackOAuth:
    """What OAuth mode adds to the bolt app: its settings (store, states, authorize) and the token lookup
    for work outside a request."""

    def __init__(
        self,
        installations: Installations,
        client: AsyncWebClient,
        *,
        client_id: str,
        client_secret: str,
        api_url: str,
        redirect_uri: str | None,
    ) -> None:
        self.store = SqlInstallationStore(installations, client_id)
        # bolt's defaults would build clients of their own, on slack.com: these use SLACK_API_URL
        rotator = AsyncTokenRotator(client_id=client_id, client_secret=client_secret, client=client)
        self.authorize = BoundedAuthorize(
            logger=logging.getLogger("threadwise.slack.bolt"),
            installation_store=self.store,
            client_id=client_id,
            client_secret=client_secret,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            cache_enabled=True,
            client=client,
        )
        self.authorize.token_rotator = rotator
        self.settings = AsyncOAuthSettings(
            client_id=client_id,
            client_secret=client_secret,
            scopes=list(BOT_SCOPES),  # what manifest.yml asks for
            user_scopes=[],
            redirect_uri=redirect_uri,
            install_path=INSTALL_PATH,
            install_page_rendering_enabled=False,  # straight to Slack's authorize page
            redirect_uri_path=REDIRECT_PATH,
            authorization_url=authorize_url(api_url),
            installation_store=self.store,
            installation_store_bot_only=False,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            state_store=SqlOAuthStateStore(installations.states(ttl=STATE_TTL)),
            state_expiration_seconds=int(STATE_TTL.total_seconds()),
            logger=logging.getLogger("threadwise.slack.oauth"),
        )
        self.settings.authorize = self.authorize
        self.tokens = WorkspaceTokens(installations, client_id, rotator)


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def oauth_routes(flow: AsyncOAuthFlow) -> tuple[Route, Route]:
    """``GET /slack/install`` and ``GET /slack/oauth_redirect`` on our aiohttp server."""

    def bolt_request(request: web.Request) -> AsyncBoltRequest:
        cookie = request.headers.get("Cookie")
        return AsyncBoltRequest(
            body="", query=request.query_string, headers={"Cookie": cookie} if cookie else {}
        )

    async def install(request: web.Request) -> web.StreamResponse:
        try:
            answer = await flow.handle_installation(bolt_request(request))
        except TooManyInstalls:
            log.warning("too many Slack installs in progress; /slack/install refused for now")
            return web.Response(status=503, text="Too many installs in progress. Try again in a few minutes.")
        return await to_aiohttp_response(answer)

    async def redirect(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await flow.handle_callback(bolt_request(request)))

    return install, redirect
