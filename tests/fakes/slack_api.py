"""A wire-level fake of Slack for tests: the Web API, file hosting, response URLs, Socket Mode, and a sender
of signed Events API / slash command requests.

``FakeSlack`` runs an aiohttp server on ``127.0.0.1`` (random port). Point the real ``slack_sdk`` clients at
``fake.api_url`` (``http://127.0.0.1:<port>/api/``, as SLACK_API_URL). It answers the Web API methods the
adapter uses, over GET and POST (form or JSON), checks the bot token (``xoxb-…``) or, for
``apps.connections.open``, the app token (``xapp-…``), and keeps the workspace state a user would see:
messages (with every edit), ephemeral answers, uploaded files. ``fail(method, …)`` scripts errors such as a
429 with ``Retry-After``. Hosted files (``add_file``) are served at ``url_private_download`` only with the bot
token; without it Slack's sign-in page (HTML, status 200) comes back, as on the real service.

Socket Mode: ``apps.connections.open`` returns ``ws://127.0.0.1:<port>/link/?ticket=…``; the fake sends
``hello`` on connect, and ``socket_send`` delivers an envelope and waits for the app's ack (same
``envelope_id``). Events API over HTTP: ``post_event`` / ``post_command`` sign the body with the signing
secret (``X-Slack-Signature`` v0, ``X-Slack-Request-Timestamp``), optionally forged, stale or as a retry.

Several workspaces (distribution through OAuth v2): ``GET /oauth/v2/authorize`` is Slack's page in the
installer's browser; it "approves" at once and redirects to the app's redirect URL with a code for the team
``install_into`` names. ``oauth.v2.access`` (HTTP Basic with ``CLIENT_ID``/``CLIENT_SECRET``) trades the code
for a bot token of that team, with a refresh token and an expiry when ``token_rotation`` is on, and a refresh
token for a new one (``grant_type=refresh_token``). Every Web API call is checked against the tokens issued so
far; ``auth.test`` answers for the token's own team; ``uninstall(team)`` revokes a team's tokens. Each call
records the token it came with (``ApiCall.token``) and the team it belongs to.

Native streaming: ``chat.startStream`` / ``chat.appendStream`` / ``chat.stopStream`` work in the teams listed
in ``streaming`` and answer ``stream_refusal`` (default ``unknown_method``) elsewhere. A streamed message is
a ``PostedMessage`` whose text grows with each append (``appends``, ``chunks``), its ``stream`` "open" until
stopped. In a channel (not a DM) a stream needs ``recipient_user_id`` and ``recipient_team_id``.

Payload layouts follow Slack's documented examples (event_callback envelopes, app_mention / message events,
slash command form fields, Socket Mode envelopes, oauth.v2.access answers).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

BOT_TOKEN = "xoxb-1111-2222-fake"
APP_TOKEN = "xapp-1-A0APP-3333-fake"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM_ID = "T0TEAM"
APP_ID = "A0APP"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "fake-client-secret"
OTHER_TEAM = "T0OTHER"  # a second workspace (OAuth tests)

# The bot scopes of manifest.yml: what auth.test reports in X-OAuth-Scopes for an app installed from it.
MANIFEST_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "chat:write.public",
    "commands",
    "files:read",
    "files:write",
    "im:write",
    "users:read",
)

SIGN_IN_PAGE = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"


@dataclass
class ApiCall:
    """One Web API request as received: method name, merged arguments, token used, HTTP verb."""

    method: str
    args: dict[str, Any]
    token: str | None
    verb: str
    status: int = 200
    team: str | None = None  # the workspace of the token


@dataclass(frozen=True)
class Team:
    team_id: str
    name: str
    bot_user_id: str
    bot_id: str


@dataclass
class PostedMessage:
    channel: str
    ts: str
    text: str
    thread_ts: str | None
    user: str
    edits: list[str] = field(default_factory=list)  # the text after each chat.update, in order
    deleted: bool = False
    token: str | None = None  # the token it was posted with
    stream: str | None = None  # "open" / "stopped" for a natively streamed message
    appends: list[str] = field(default_factory=list)  # Markdown appended to a stream, call by call
    chunks: list[dict[str, Any]] = field(default_factory=list)  # every chunk a stream received
    recipient: tuple[str, str] | None = None  # (recipient_user_id, recipient_team_id) of a stream
    blocks: list[dict[str, Any]] = field(default_factory=list)  # the Block Kit blocks it shows now

    @property
    def is_control(self) -> bool:
        """Only buttons (a message with blocks shows them, not its text; a stream shows both)."""
        only = bool(self.blocks) and all(block.get("type") == "actions" for block in self.blocks)
        return only and self.stream is None

    def buttons(self) -> dict[str, str]:
        """The buttons it shows: action_id -> value."""
        return {
            str(element.get("action_id")): str(element.get("value"))
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements") or []
        }

    @property
    def current(self) -> str:
        return self.edits[-1] if self.edits else self.text


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass
class Fault:
    status: int = 429
    error: str = "ratelimited"
    retry_after: int | None = 1
    disconnect: bool = False  # the connection is dropped without an answer (Slack unreachable mid-call)


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self.messages: list[PostedMessage] = []
        self.ephemeral: list[dict[str, Any]] = []  # chat.postEphemeral arguments
        self.responses: list[dict[str, Any]] = []  # JSON bodies posted to response_url
        self.uploads: dict[str, Upload] = {}
        self.downloads: list[tuple[str, bool]] = []  # (path, with the bot token)
        self.users: dict[str, dict[str, Any]] = {}
        self.unreachable_channels: set[str] = set()  # chat.postMessage answers not_in_channel here
        self.file_delay = 0.0  # seconds a hosted file download takes (to test ordering)
        self.said: list[dict[str, Any]] = []  # messages people posted (message_event(record=True))
        self.socket_envelopes: list[dict[str, Any]] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connected = asyncio.Event()
        self.teams: dict[str, Team] = {TEAM_ID: Team(TEAM_ID, "Fake Workspace", BOT_USER_ID, BOT_ID)}
        self.tokens: dict[str, str] = {BOT_TOKEN: TEAM_ID}  # valid bot tokens -> their team
        self.install_into = OTHER_TEAM  # the team the authorize page installs into
        self.oauth_redirect_url: str | None = None  # the app's configured redirect URL
        self.authorize_requests: list[dict[str, str]] = []  # query of each authorize page visit
        self.token_rotation = False  # oauth.v2.access issues expiring tokens with refresh tokens
        self.token_expires_in = 43_200
        self.home_views: dict[tuple[str, str], dict[str, Any]] = {}  # (team, user) -> the published Home tab
        self.streaming: set[str] = set()  # teams where native streaming works
        self.stream_refusal = "unknown_method"  # what chat.startStream answers elsewhere
        self._codes: dict[str, str] = {}  # OAuth code -> team
        self._refresh: dict[str, str] = {}  # refresh token -> team
        self.scopes: list[str] = list(
            MANIFEST_SCOPES
        )  # granted to the bot token (auth.test's X-OAuth-Scopes)
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._hosted: dict[str, tuple[bytes, str]] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.add_user("U0BOT", "threadwise", bot=True)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{team_file}/{name}", self._file)
        app.router.add_post("/respond/{hook}", self._respond)
        app.router.add_get("/link/", self._socket)
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base(self) -> str:
        assert self._port is not None, "FakeSlack is not started"
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    # ------------------------------------------------------------------ scripting

    def add_user(
        self, user_id: str, name: str, *, admin: bool = False, owner: bool = False, bot: bool = False
    ) -> None:
        """A workspace member as ``users.info`` describes one."""
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": name.title(),
            "tz": "Europe/Amsterdam",
            "profile": {"real_name": name.title(), "display_name": name, "team": TEAM_ID},
            "is_admin": admin,
            "is_owner": owner,
            "is_primary_owner": owner,
            "is_bot": bot,
            "is_app_user": False,
        }

    def add_team(self, team_id: str, name: str) -> Team:
        """Another workspace (its bot has its own user id there)."""
        suffix = team_id.removeprefix("T")
        team = Team(team_id, name, f"U0BOT{suffix}", f"B0BOT{suffix}")
        self.teams[team_id] = team
        return team

    def uninstall(self, team_id: str) -> None:
        """The app is removed from ``team_id``: its tokens stop working."""
        for token, team in list(self.tokens.items()):
            if team == team_id:
                del self.tokens[token]
        for refresh, team in list(self._refresh.items()):
            if team == team_id:
                del self._refresh[refresh]

    def bot_user(self, team_id: str = TEAM_ID) -> str:
        return self.teams[team_id].bot_user_id

    def fail(self, method: str, fault: Fault | None = None, *, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` fail with ``fault`` (default: 429, Retry-After: 1)."""
        for _ in range(times):
            self._faults[method].append(fault or Fault())

    def heal(self, method: str) -> None:
        """``method``'s calls no longer fail (the faults still queued are dropped)."""
        self._faults.pop(method, None)

    def add_file(self, name: str, data: bytes, mimetype: str, filetype: str) -> dict[str, Any]:
        """Hosts ``data`` and returns the file object as it appears in a message event's ``files``."""
        file_id = f"F{next(self._ids):08d}"
        path = f"/files-pri/{TEAM_ID}-{file_id}/{name}"
        self._hosted[path] = (data, mimetype)
        return {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": "U0ALICE",
            "user_team": TEAM_ID,
            "editable": False,
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.base}{path}",
            "url_private_download": f"{self.base}{path}",
            "permalink": f"https://fake.slack.com/files/U0ALICE/{file_id}/{name}",
            "has_rich_preview": False,
        }

    # ------------------------------------------------------------------ inspection

    def calls_of(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method and call.status == 200]

    def methods(self) -> list[str]:
        """Web API methods called (successful answers only), in order, ``auth.test`` included."""
        return [call.method for call in self.calls if call.status == 200]

    def bot_messages(
        self, channel: str | None = None, thread_ts: str | None = None, *, controls: bool = False
    ) -> list[PostedMessage]:
        """The bot's messages; without ``controls``, not those that are only buttons (e.g. a Stop button
        beside a native stream)."""
        return [
            m
            for m in self.messages
            if m.user in {team.bot_user_id for team in self.teams.values()}
            and not m.deleted
            and (channel is None or m.channel == channel)
            and (thread_ts is None or m.thread_ts == thread_ts)
            and (controls or not m.is_control)
        ]

    async def wait_for(self, predicate: Any, seconds: float = 10.0) -> None:
        """Waits until ``predicate()`` is true; re-checked after every request the fake handles."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(predicate)

    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def next_ts(self) -> str:
        n = next(self._ts)
        return f"{1_700_000_000 + n}.{n:06d}"

    # ------------------------------------------------------------------ Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else args.get("token")
        call = ApiCall(method, args, token, request.method, team=self.tokens.get(str(token)))
        self.calls.append(call)
        try:
            if method == "oauth.v2.access":
                call.token = header
                body = self._oauth_access(header, args)
                call.status = 200 if body.get("ok") else 400
                return web.json_response(body)
            valid = token == APP_TOKEN if method == "apps.connections.open" else token in self.tokens
            if not valid:
                call.status = 401
                return web.json_response({"ok": False, "error": "invalid_auth"})
            queue = self._faults.get(method)
            if queue:
                fault = queue.popleft()
                call.status = fault.status
                if fault.disconnect and request.transport is not None:
                    request.transport.abort()
                    return web.Response(status=fault.status)
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return web.json_response(
                    {"ok": False, "error": fault.error}, status=fault.status, headers=headers
                )
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                call.status = 404
                return web.json_response({"ok": False, "error": "unknown_method"})
            body: dict[str, Any] = handler(args, call)
            if not body.get("ok"):
                call.status = 400
            # Slack reports the token's scopes on every Web API answer (auth.test included)
            scopes = self.scopes if token in self.tokens else ["connections:write"]
            return web.json_response(body, headers={"X-OAuth-Scopes": ",".join(scopes)})
        finally:
            await self._touch()

    def _m_auth_test(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        team = self.teams[call.team or TEAM_ID]
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": team.name,
            "user": "threadwise",
            "team_id": team.team_id,
            "user_id": team.bot_user_id,
            "bot_id": team.bot_id,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        ws = self.base.replace("http://", "ws://")
        return {"ok": True, "url": f"{ws}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"}

    def _m_chat_postMessage(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.unreachable_channels:
            return {"ok": False, "error": "not_in_channel"}
        text = str(args.get("text") or "")
        if not text and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if len(text) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        bot = self.bot_user(call.team or TEAM_ID)
        message = PostedMessage(channel, self.next_ts(), text, args.get("thread_ts") or None, bot)
        message.token = call.token
        message.blocks = _blocks(args.get("blocks"))
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": self._shape(message)}

    # ------------------------------------------------------------------ native streaming

    def _m_chat_startStream(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        team = call.team or TEAM_ID
        if team not in self.streaming:
            return {"ok": False, "error": self.stream_refusal}
        channel, thread = str(args.get("channel") or ""), str(args.get("thread_ts") or "")
        if not channel or not thread:
            return {"ok": False, "error": "invalid_arguments"}
        if channel in self.unreachable_channels:
            return {"ok": False, "error": "not_in_channel"}
        recipient = (str(args.get("recipient_user_id") or ""), str(args.get("recipient_team_id") or ""))
        if not channel.startswith("D") and not all(recipient):
            return {"ok": False, "error": "invalid_arguments"}  # required when streaming to channels
        message = PostedMessage(channel, self.next_ts(), "", thread, self.bot_user(team), stream="open")
        message.token = call.token
        message.recipient = recipient if all(recipient) else None
        self.messages.append(message)
        error = self._stream_in(message, args)
        if error:
            return {"ok": False, "error": error}
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _m_chat_appendStream(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.stream != "open":
            return {"ok": False, "error": "message_not_in_streaming_state"}
        error = self._stream_in(message, args)
        if error:
            return {"ok": False, "error": error}
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_chat_stopStream(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.stream != "open":
            return {"ok": False, "error": "message_not_in_streaming_state"}
        error = self._stream_in(message, args)
        if error:
            return {"ok": False, "error": error}
        message.stream = "stopped"
        message.blocks = message.blocks + _blocks(args.get("blocks"))
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": self._shape(message)}

    @staticmethod
    def _stream_in(message: PostedMessage, args: dict[str, Any]) -> str | None:
        """Appends what a stream call carries (``markdown_text`` and ``chunks``); an error, if any."""
        chunks = args.get("chunks") or []
        if isinstance(chunks, str):
            chunks = json.loads(chunks)
        texts = [str(args["markdown_text"])] if args.get("markdown_text") else []
        for chunk in chunks:
            if chunk.get("type") not in ("markdown_text", "task_update", "plan_update", "blocks"):
                return "invalid_chunks"
            if chunk.get("type") == "markdown_text":
                texts.append(str(chunk.get("text") or ""))
        if any(len(text) > 12_000 for text in texts):
            return "msg_too_long"
        message.chunks.extend(chunks)
        for text in texts:
            message.appends.append(text)
            message.text += text
        return None

    # ------------------------------------------------------------------ OAuth v2

    async def _authorize(self, request: web.Request) -> web.Response:
        """Slack's authorize page, approved at once: back to the app with a code for ``install_into``."""
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri") or self.oauth_redirect_url
        if query.get("client_id") != CLIENT_ID or not redirect:
            return web.Response(status=400, text="invalid client_id or redirect_uri")
        code = f"code-{uuid.uuid4().hex[:12]}"
        self._codes[code] = self.install_into
        if self.install_into not in self.teams:
            self.add_team(self.install_into, f"Workspace {self.install_into}")
        location = f"{redirect}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        await self._touch()
        raise web.HTTPFound(location)

    def _oauth_access(self, header: str, args: dict[str, Any]) -> dict[str, Any]:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if header != expected:
            return {"ok": False, "error": "invalid_client_id"}
        if args.get("grant_type") == "refresh_token":
            team_id = self._refresh.pop(str(args.get("refresh_token")), None)
            if team_id is None:
                return {"ok": False, "error": "invalid_refresh_token"}
        else:
            team_id = self._codes.pop(str(args.get("code")), None)
            if team_id is None:
                return {"ok": False, "error": "invalid_code"}
        team = self.teams[team_id]
        n = next(self._ids)
        prefix = "xoxe.xoxb" if self.token_rotation else "xoxb"
        token = f"{prefix}-{team_id}-{n}"
        self.tokens[token] = team_id
        answer: dict[str, Any] = {
            "ok": True,
            "access_token": token,
            "token_type": "bot",
            "scope": "app_mentions:read,chat:write,commands",
            "bot_user_id": team.bot_user_id,
            "app_id": APP_ID,
            "team": {"name": team.name, "id": team_id},
            "enterprise": None,
            "authed_user": {"id": "U0INSTALLER"},
            "is_enterprise_install": False,
        }
        if self.token_rotation:
            refresh = f"xoxe-1-{team_id}-{n}"
            self._refresh[refresh] = team_id
            answer |= {"refresh_token": refresh, "expires_in": self.token_expires_in}
        return answer

    def _m_chat_update(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        text = str(args.get("text") or "")
        if len(text) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        message.edits.append(text)
        if "blocks" in args:  # omitted: the message keeps its blocks; [] removes them
            message.blocks = _blocks(args.get("blocks"))
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": text}

    def _m_chat_delete(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _m_chat_postEphemeral(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        self.ephemeral.append(args)
        return {"ok": True, "message_ts": self.next_ts()}

    def _m_users_info(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _m_conversations_open(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        users = str(args.get("users") or "")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0].removeprefix("U")}}

    def _m_conversations_replies(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        """A thread's messages, oldest first, people's and the bot's, paged by ``limit``/``cursor``."""
        channel, thread = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel or not thread:
            return {"ok": False, "error": "invalid_arguments"}
        people = [
            m
            for m in self.said
            if m["channel"] == channel and (m["ts"] == thread or m.get("thread_ts") == thread)
        ]
        bot = [
            self._shape(m) | {"text": m.current}
            for m in self.messages
            if m.channel == channel and (m.ts == thread or m.thread_ts == thread) and not m.deleted
        ]
        thread_messages = sorted(people + bot, key=lambda m: float(m["ts"]))
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0)
        page = thread_messages[start : start + limit]
        more = start + limit < len(thread_messages)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _m_views_publish(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        """The App Home tab of ``user_id``: a ``home`` view of at most 100 blocks."""
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        user = str(args.get("user_id") or "")
        if not user or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if view.get("type") != "home" or len(view.get("blocks") or []) > 100:
            return {"ok": False, "error": "invalid_arguments"}
        self.home_views[(call.team or TEAM_ID, user)] = view
        return {"ok": True, "view": {"id": f"V{next(self._ids):08d}", **view}}

    def _m_files_info(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        return {"ok": False, "error": "file_not_found"}

    def _m_files_getUploadURLExternal(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        filename, length = args.get("filename"), args.get("length")
        if not filename or length is None:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        self.uploads[file_id] = Upload(file_id, str(filename), int(length))
        return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        files = args.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        shared = []
        for item in files:
            upload = self.uploads.get(str(item.get("id")))
            if upload is None or upload.data is None or len(upload.data) != upload.length:
                return {"ok": False, "error": "file_not_found"}
            upload.title = item.get("title") or upload.filename
            upload.channel = args.get("channel_id") or None
            upload.thread_ts = args.get("thread_ts") or None
            upload.initial_comment = args.get("initial_comment") or None
            shared.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
        return {"ok": True, "files": shared}

    def _m_assistant_threads_setStatus(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        return self._assistant_call(args)

    def _m_assistant_threads_setTitle(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        return self._assistant_call(args)

    def _m_assistant_threads_setSuggestedPrompts(self, args: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        return self._assistant_call(args)

    @staticmethod
    def _assistant_call(args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _find(self, channel: str, ts: str) -> PostedMessage | None:
        for message in self.messages:
            if message.channel == channel and message.ts == ts and not message.deleted:
                return message
        return None

    @staticmethod
    def _shape(message: PostedMessage) -> dict[str, Any]:
        shaped = {
            "type": "message",
            "user": message.user,
            "bot_id": BOT_ID,
            "text": message.text,
            "ts": message.ts,
            "team": TEAM_ID,
        }
        if message.thread_ts:
            shaped["thread_ts"] = message.thread_ts
        return shaped

    # ------------------------------------------------------------------ uploads, downloads, response URLs

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="not found")
        upload.data = await request.read()
        await self._touch()
        return web.Response(text=f"OK - {len(upload.data)}")

    async def _file(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        authorized = header.startswith("Bearer ") and header.removeprefix("Bearer ") in self.tokens
        self.downloads.append((request.path, authorized))
        hosted = self._hosted.get(request.path)
        if not authorized:
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")
        if hosted is None:
            return web.Response(status=404, text="file not found")
        data, mimetype = hosted
        if self.file_delay:
            await asyncio.sleep(self.file_delay)
        return web.Response(body=data, content_type=mimetype)

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        await self._touch()
        return web.Response(text="ok")

    # ------------------------------------------------------------------ Socket Mode

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
                "connection_info": {"app_id": APP_ID},
            }
        )
        self.socket_connected.set()
        try:
            async for frame in socket:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                self.socket_acks.append(ack)
                future = self._acks.pop(str(ack.get("envelope_id")), None)
                if future is not None and not future.done():
                    future.set_result(ack)
        finally:
            self._sockets.remove(socket)
        return socket

    async def drop_sockets(self) -> None:
        """Closes every Socket Mode connection, as Slack does when it moves an app to another server."""
        self.socket_connected.clear()
        for socket in list(self._sockets):
            await socket.close()

    async def socket_send(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, seconds: float = 5.0
    ) -> dict[str, Any]:
        """Delivers an envelope (``events_api``, ``slash_commands``, …) and returns the app's ack."""
        await asyncio.wait_for(self.socket_connected.wait(), seconds)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        self.socket_envelopes.append(envelope)
        await self._sockets[-1].send_json(envelope)
        return await asyncio.wait_for(future, seconds)

    # ------------------------------------------------------------------ payloads (Slack's documented shapes)

    def message_event(
        self,
        text: str,
        *,
        channel: str = "C0GENERAL",
        user: str = "U0ALICE",
        thread_ts: str | None = None,
        channel_type: str = "channel",
        files: list[dict[str, Any]] | None = None,
        mention: bool = False,
        ts: str | None = None,
        record: bool = False,
        team: str = TEAM_ID,
    ) -> dict[str, Any]:
        """A ``message`` event (``mention=True``: its ``app_mention`` twin, same ts); ``record``: also part of
        the channel's history (``conversations.replies``) without being delivered; ``team``: the workspace."""
        ts = ts or self.next_ts()
        event: dict[str, Any] = {
            "type": "app_mention" if mention else "message",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
            "team": team,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": [
                {
                    "type": "rich_text",
                    "block_id": "b1",
                    "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
                }
            ],
        }
        if not mention:
            event["channel_type"] = channel_type
        if thread_ts:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = self.teams[team].bot_user_id if team in self.teams else BOT_USER_ID
        if files:
            event["files"] = files
            event["upload"] = False
            event["display_as_bot"] = False
            if not mention:
                event["subtype"] = "file_share"
        if record:
            self.said.append({**event, "type": "message"})
        return event

    def envelope(
        self, event: dict[str, Any], *, event_id: str | None = None, team: str | None = None
    ) -> dict[str, Any]:
        """The ``event_callback`` body around ``event``, from workspace ``team`` (default: the event's)."""
        team = team or str(event.get("team") or TEAM_ID)
        bot = self.teams[team].bot_user_id if team in self.teams else "U0NOBOT"
        return {
            "token": "XXYYZZ",
            "team_id": team,
            "context_team_id": team,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(float(event.get("event_ts") or event.get("ts") or time.time())),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team,
                    "user_id": bot,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }

    def app_home_opened(
        self, user: str = "U0ALICE", *, tab: str = "home", team: str = TEAM_ID
    ) -> dict[str, Any]:
        """An ``app_home_opened`` event: ``user`` opened the app's Home (or Messages) tab."""
        ts = self.next_ts()
        return {
            "type": "app_home_opened",
            "user": user,
            "channel": "D" + user.removeprefix("U"),
            "tab": tab,
            "event_ts": ts,
            "team": team,
        }

    def shortcut_payload(
        self,
        message: dict[str, Any],
        *,
        user: str = "U0ALICE",
        team: str = TEAM_ID,
        callback_id: str = "ask_threadwise",
    ) -> dict[str, Any]:
        """A message shortcut (``message_action``) used by ``user`` on ``message`` (a message event as
        ``message_event`` builds it), with a response_url on this fake (Slack's documented example)."""
        picked = {
            key: value for key, value in message.items() if key not in ("channel", "event_ts", "channel_type")
        }
        picked["type"] = "message"
        return {
            "type": "message_action",
            "token": "Nj2rfC2hU8mAfgaJLemZgO7H",
            "action_ts": self.next_ts(),
            "team": {"id": team, "domain": "fake"},
            "user": {
                "id": user,
                "username": self.users.get(user, {}).get("name", "someone"),
                "team_id": team,
                "name": self.users.get(user, {}).get("name", "someone"),
            },
            "channel": {"id": message["channel"], "name": "general"},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": f"{next(self._ids)}.773906753841.{uuid.uuid4().hex}",
            "message_ts": message["ts"],
            "message": picked,
            "response_url": f"{self.base}/respond/{uuid.uuid4().hex}",
        }

    def command_payload(
        self,
        command: str,
        text: str,
        *,
        user: str = "U0ALICE",
        channel: str = "C0GENERAL",
        team: str = TEAM_ID,
    ) -> dict[str, str]:
        """The fields of a slash command invocation, with a response_url on this fake."""
        return {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": team,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general" if channel.startswith("C") else "directmessage",
            "user_id": user,
            "user_name": self.users.get(user, {}).get("name", "someone"),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.base}/respond/{uuid.uuid4().hex}",
            "trigger_id": f"{next(self._ids)}.{uuid.uuid4().hex[:12]}",
        }

    def action_payload(
        self,
        message: PostedMessage,
        action_id: str,
        *,
        user: str = "U0ALICE",
        team: str = TEAM_ID,
    ) -> dict[str, Any]:
        """A ``block_actions`` payload for a click on the button ``action_id`` of ``message`` (the shape of
        Slack's documented example), with a response_url on this fake."""
        [block_id, value] = next(
            (str(block.get("block_id")), str(element.get("value")))
            for block in message.blocks
            if block.get("type") == "actions"
            for element in block.get("elements") or []
            if element.get("action_id") == action_id
        )
        name = self.users.get(user, {}).get("name", "someone")
        return {
            "type": "block_actions",
            "user": {"id": user, "username": name, "name": name, "team_id": team},
            "api_app_id": APP_ID,
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
                "thread_ts": message.thread_ts,
            },
            "trigger_id": f"{next(self._ids)}.{uuid.uuid4().hex[:12]}",
            "team": {"id": team, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": "general"},
            "message": {
                "type": "message",
                "user": message.user,
                "ts": message.ts,
                "thread_ts": message.thread_ts,
                "text": message.current,
                "blocks": message.blocks,
            },
            "state": {"values": {}},
            "response_url": f"{self.base}/respond/{uuid.uuid4().hex}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": action_id, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }


def _blocks(value: Any) -> list[dict[str, Any]]:
    """Blocks as a Web API call carries them (a JSON string in a form, a list in JSON)."""
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return [block for block in value or [] if isinstance(block, dict)]


def sign(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Slack's request signature: ``v0=`` + HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass
class Delivery:
    status: int
    body: str
    seconds: float


class EventSender:
    """Posts signed requests to an app's Events API / slash command URL, as Slack does."""

    def __init__(self, url: str, session: aiohttp.ClientSession, secret: str = SIGNING_SECRET) -> None:
        self.url = url
        self._session = session
        self._secret = secret

    async def send(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Delivery:
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": sign(body, stamp, secret or self._secret),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        started = time.perf_counter()
        async with self._session.post(self.url, data=body.encode(), headers=headers) as response:
            text = await response.text()
            return Delivery(response.status, text, time.perf_counter() - started)

    async def event(self, envelope: dict[str, Any], **options: Any) -> Delivery:
        return await self.send(json.dumps(envelope), "application/json", **options)

    async def command(self, fields: dict[str, str], **options: Any) -> Delivery:
        return await self.send(urlencode(fields), "application/x-www-form-urlencoded", **options)

    async def interactive(self, payload: dict[str, Any], **options: Any) -> Delivery:
        """An interactivity request (shortcut, button click): a form whose ``payload`` field is the JSON."""
        body = urlencode({"payload": json.dumps(payload)})
        return await self.send(body, "application/x-www-form-urlencoded", **options)

    action = interactive  # a button click
