"""A wire-level fake of Discord for tests: the REST API, the attachments CDN and the gateway websocket.

``FakeDiscord`` runs one aiohttp server on ``127.0.0.1`` (random free port). Point the real discord.py client
at it through ``api_url`` (``DISCORD_API_URL``, which becomes ``discord.http.Route.BASE``) and ``gateway_url``
(``DISCORD_GATEWAY_URL``, which becomes ``DiscordWebSocket.DEFAULT_GATEWAY``)::

    async with FakeDiscord() as fake:
        ... start the bot with DISCORD_API_URL=fake.api_url, DISCORD_GATEWAY_URL=fake.gateway_url ...
        await fake.wait_ready()
        message_id = await fake.message_create(fake.channel_id, "hello <@bot>", mention_bot=True)
        interaction = await fake.interact("ai", "chat", {"prompt": "plan a trip"})

Payload shapes follow Discord's API reference (v10): READY carries ``user``, unavailable ``guilds``,
``session_id``, ``resume_gateway_url`` and ``application {id, flags}``; GUILD_CREATE carries channels,
threads, roles and members; MESSAGE_CREATE a message with ``author``/``member``/``mentions``/``attachments``;
INTERACTION_CREATE an application command (type 2) whose ``data.options`` hold a subcommand (type 1) with its
options, and a ``member`` with a ``permissions`` string (or a ``user`` in DMs).

Buttons: messages keep the ``components`` (action rows of buttons) the bot sends or edits in, checked the
way Discord checks them (at most 5 rows of 5, ``custom_id`` 1-100 characters and unique in the message);
``click`` dispatches a MESSAGE_COMPONENT interaction (type 3: ``data {custom_id, component_type}``, the
``message`` as it is now), which the bot answers with a (deferred) update of that message (callback 6 or 7:
``@original`` is then the clicked message) or a message of its own (4 or 5).

Shards: each gateway connection IDENTIFYs with its ``shard`` ``[id, count]`` (``identify_payloads`` keeps
every one); a guild's events go to the connection of shard ``(guild_id >> 22) % count``, as Discord routes
them, and DMs to shard 0. ``drop_gateway()`` closes every connection and refuses new ones until
``restore_gateway()``; a RESUME is answered with RESUMED.

Gateway frames are plain JSON text: discord.py asks for ``compress=zlib-stream`` in the URL, but decompresses
only binary frames (``DiscordWebSocket.received_message``), so text frames are read as they are.

Every REST request is recorded in ``calls`` (method, route template, time). ``rate_limit(method, route)``
makes the next matching request answer 429 the way Discord does (``Via`` header, JSON body with
``retry_after``, ``X-RateLimit-*`` headers), so discord.py waits and retries instead of assuming a
Cloudflare ban.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["Call", "FakeDiscord", "FakeInteraction", "FakeMessage"]

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = str((1 << 50) - 1)
MEMBER_PERMISSIONS = str(0x0000_0400 | 0x0000_0800 | 0x0004_0000 | 0x8000_0000)  # view, send, threads
MANAGE_GUILD = 1 << 5
EPHEMERAL = 1 << 6
LOADING = 1 << 7


@dataclass
class Call:
    """One REST request as received: ``route`` is the template (``/channels/{id}/messages``)."""

    method: str
    route: str
    path: str
    at: float
    json: Any = None
    files: list[tuple[str, bytes]] = field(default_factory=list)
    status: int = 200


@dataclass
class FakeMessage:
    """A message as a Discord user would see it now (content after every edit)."""

    id: int
    channel_id: int
    author_id: int
    content: str
    files: list[tuple[str, bytes]] = field(default_factory=list)
    edits: int = 0
    ephemeral: bool = False
    interaction_id: int | None = None
    loading: bool = False
    deleted: bool = False
    created_at: float = field(default_factory=time.monotonic)
    components: list[dict[str, Any]] = field(default_factory=list)  # action rows, as last sent

    def custom_ids(self) -> list[str]:
        """The custom ids of the message's buttons, in order."""
        return [
            c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c
        ]


@dataclass
class FakeInteraction:
    """An interaction sent to the bot and what the bot answered to it."""

    id: int
    token: str
    channel_id: int
    sent_at: float
    callback_type: int | None = None
    callback_at: float | None = None
    ephemeral: bool = False
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    kind: int = 2  # 2: application command; 3: message component (a click on ``message_id``)
    message_id: int | None = None


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with exactly ``Content-Type: application/json``, as Discord sends it (discord.py compares it)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).isoformat()


class FakeDiscord:
    """An in-process fake Discord; see the module docstring."""

    def __init__(self, *, token: str = "fake-bot-token") -> None:
        # awaited after the bot posts or edits a channel message, before the bot gets the answer (a test acts
        # at that moment, e.g. clicks a button the instant it appears)
        self.on_written: Callable[[FakeMessage], Awaitable[None]] | None = None
        self.token = token
        self._ids = itertools.count(1)
        self._epoch_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self.app_id = self.snowflake()
        self.bot_user = self.user(self.app_id, "Threadwise", bot=True)
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()  # #general
        self.owner = self.user(self.snowflake(), "owner")
        self.admin_role_id = self.snowflake()
        self.channels: dict[int, dict[str, Any]] = {
            self.channel_id: self._text_channel(self.channel_id, "general"),
        }
        self.threads: dict[int, dict[str, Any]] = {}
        self.dm_channels: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.authors: dict[int, dict[str, Any]] = {}  # message id -> its author (users' messages)
        self.interactions: dict[int, FakeInteraction] = {}
        self.calls: list[Call] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id -> registered commands
        self.cdn: dict[str, tuple[str, bytes]] = {}  # path -> (content type, bytes)
        self.cdn_gets: list[str] = []  # paths of the attachments downloaded, in order
        self.identified = asyncio.Event()
        self.connections = 0  # gateway connections opened (a reconnect opens another)
        self.identify_payload: dict[str, Any] | None = None  # the last IDENTIFY
        self.identify_payloads: list[dict[str, Any]] = []  # every IDENTIFY, in order
        self.gateway_down = False  # drop_gateway(): connections are refused
        # the application's flags (GET /oauth2/applications/@me): the Message Content intent (limited: < 100
        # servers) is on, as the README asks; 0 means it was never switched on in the Developer Portal
        self.application_flags = 1 << 19
        self._rate_limits: list[tuple[str, str, float]] = []
        self._ws: web.WebSocketResponse | None = None  # the last connection that identified
        self._shards: dict[int, tuple[web.WebSocketResponse, int]] = {}  # shard id -> (connection, count)
        self._seqs: dict[web.WebSocketResponse, int] = {}
        self._sessions: dict[str, tuple[int, int]] = {}  # session id -> (shard, count), for RESUME
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ ids and payload builders

    def snowflake(self) -> int:
        return ((self._epoch_ms + next(self._ids)) << 22) | next(self._ids) % 4096

    @staticmethod
    def user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(user_id),
            "username": name,
            "discriminator": "0",
            "global_name": name.title(),
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if bot:
            data["bot"] = True
        return data

    def _text_channel(self, channel_id: int, name: str) -> dict[str, Any]:
        return {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": len(getattr(self, "channels", {})),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "default_auto_archive_duration": 1440,
            "flags": 0,
        }

    def _thread(self, thread_id: int, parent_id: int, name: str, owner_id: int) -> dict[str, Any]:
        return {
            "id": str(thread_id),
            "type": 11,  # PUBLIC_THREAD
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _iso(),
                "locked": False,
                "create_timestamp": _iso(),
            },
        }

    def member(self, user: dict[str, Any], *, admin: bool = False) -> dict[str, Any]:
        return {
            "user": user,
            "nick": None,
            "avatar": None,
            "roles": [str(self.admin_role_id)] if admin else [],
            "joined_at": _iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }

    def guild_payload(self) -> dict[str, Any]:
        roles = [
            {
                "id": str(self.guild_id),  # @everyone has the guild's id
                "name": "@everyone",
                "color": 0,
                "hoist": False,
                "icon": None,
                "unicode_emoji": None,
                "position": 0,
                "permissions": MEMBER_PERMISSIONS,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            },
            {
                "id": str(self.admin_role_id),
                "name": "Admins",
                "color": 0,
                "hoist": False,
                "icon": None,
                "unicode_emoji": None,
                "position": 1,
                "permissions": str(int(MEMBER_PERMISSIONS) | MANAGE_GUILD),
                "managed": False,
                "mentionable": False,
                "flags": 0,
            },
        ]
        return {
            "id": str(self.guild_id),
            "name": "Threadwise Test",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": self.owner["id"],
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": _iso(),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "voice_states": [],
            "members": [self.member(self.bot_user), self.member(self.owner)],
            "channels": [
                {k: v for k, v in channel.items() if k != "guild_id"} for channel in self.channels.values()
            ],
            "threads": list(self.threads.values()),
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message_payload(self, message: FakeMessage, author: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": author,
            "content": message.content,
            "timestamp": _iso(),
            "edited_timestamp": _iso() if message.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {
                    "id": str(self.snowflake()),
                    "filename": name,
                    "size": len(data),
                    "url": self._cdn_url(message.channel_id, name, data),
                    "proxy_url": self._cdn_url(message.channel_id, name, data),
                }
                for name, data in message.files
            ],
            "embeds": [],
            "reactions": [],
            "pinned": False,
            "type": 0,
            "flags": (EPHEMERAL if message.ephemeral else 0) | (LOADING if message.loading else 0),
            "components": message.components,
        }
        if self._guild_of(message.channel_id) is not None:
            data["guild_id"] = str(self.guild_id)
        if message.interaction_id is not None:
            data["webhook_id"] = str(self.app_id)
            data["application_id"] = str(self.app_id)
        return data

    def _cdn_url(self, channel_id: int, filename: str, data: bytes, content_type: str | None = None) -> str:
        path = f"/attachments/{channel_id}/{self.snowflake()}/{filename}"
        self.cdn[path] = (content_type or "application/octet-stream", data)
        return f"{self.base_url}{path}"

    def _guild_of(self, channel_id: int) -> int | None:
        if channel_id in self.channels or channel_id in self.threads:
            return self.guild_id
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/ws", self._gateway)  # as /gateway/bot names it (Discord's URLs have no slash)
        app.router.add_get("/ws/", self._gateway)
        app.router.add_get("/attachments/{tail:.*}", self._cdn)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in {ws for ws, _ in self._shards.values()} | ({self._ws} if self._ws else set()):
            await ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ws/"

    # ------------------------------------------------------------------ test controls

    def rate_limit(self, method: str, route: str, *, retry_after: float = 0.05) -> None:
        """The next ``method route`` request (a route template: ``/channels/{id}/messages``) answers 429."""
        self._rate_limits.append((method, route, retry_after))

    async def drop_gateway(self) -> None:
        """The gateway goes away: every connection is closed (code 4000, which clients resume after) and new
        ones are refused (HTTP 503) until ``restore_gateway()``."""
        self.gateway_down = True
        for ws in {ws for ws, _ in self._shards.values()}:
            await ws.close(code=4000, message=b"Unknown error.")

    def restore_gateway(self) -> None:
        self.gateway_down = False

    async def wait_ready(self, within: float = 10.0) -> None:
        await asyncio.wait_for(self.identified.wait(), within)

    async def wait_for(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Polls ``predicate`` until it returns something truthy (then returned) or ``within`` s pass."""
        deadline = time.monotonic() + within
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within} s")
            await asyncio.sleep(0.01)

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    def bot_messages(self, channel_id: int) -> list[FakeMessage]:
        """Messages the bot posted in the channel (not interaction responses or follow-ups)."""
        return [
            m
            for m in self.channel_messages(channel_id)
            if m.author_id == self.app_id and m.interaction_id is None
        ]

    def calls_between(self, start: float, end: float | None = None) -> list[Call]:
        return [c for c in self.calls if c.at >= start and (end is None or c.at <= end)]

    def dm_channel(self, user: dict[str, Any]) -> int:
        channel_id = self.snowflake()
        self.dm_channels[channel_id] = {
            "id": str(channel_id),
            "type": 1,
            "last_message_id": None,
            "recipients": [user],
            "flags": 0,
        }
        return channel_id

    async def add_text_channel(self, name: str) -> int:
        """A text channel created in the guild after the bot joined; announced with CHANNEL_CREATE."""
        channel_id = self.snowflake()
        self.channels[channel_id] = self._text_channel(channel_id, name)
        await self.dispatch("CHANNEL_CREATE", self.channels[channel_id])
        return channel_id

    def add_thread(self, parent_id: int, name: str, owner_id: int) -> int:
        """A thread some user opened (not the bot); announced to the bot with THREAD_CREATE."""
        thread_id = self.snowflake()
        self.threads[thread_id] = self._thread(thread_id, parent_id, name, owner_id)
        self._spawn(self.dispatch("THREAD_CREATE", {**self.threads[thread_id], "newly_created": True}))
        return thread_id

    async def message_create(
        self,
        channel_id: int,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        mention_bot: bool = False,
        files: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
        message_id: int | None = None,
        message_type: int = 0,
    ) -> int:
        """A user posts a message: dispatches MESSAGE_CREATE. ``files`` are (name, content type, bytes)."""
        data = self.message_data(
            channel_id,
            content,
            author=author,
            mention_bot=mention_bot,
            files=files,
            message_id=message_id,
            message_type=message_type,
        )
        await self.dispatch("MESSAGE_CREATE", data)
        return int(data["id"])

    def message_data(
        self,
        channel_id: int,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        mention_bot: bool = False,
        files: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
        message_id: int | None = None,
        message_type: int = 0,
    ) -> dict[str, Any]:
        """The MESSAGE_CREATE data of a message a user posts (recorded as posted, not yet dispatched)."""
        author = author or self.owner
        message = FakeMessage(message_id or self.snowflake(), channel_id, int(author["id"]), content)
        self.messages[message.id] = message
        self.authors[message.id] = author
        data = self._message_payload(message, author)
        data["type"] = message_type
        data["attachments"] = [
            {
                "id": str(self.snowflake()),
                "filename": name,
                "size": len(blob),
                "url": self._cdn_url(channel_id, name, blob, mime),
                "proxy_url": self._cdn_url(channel_id, name, blob, mime),
                "content_type": mime,
            }
            for name, mime, blob in files
        ]
        if mention_bot:
            data["mentions"] = [{**self.bot_user, "member": self.member(self.bot_user)}]
        if self._guild_of(channel_id) is not None:
            data["member"] = {k: v for k, v in self.member(author).items() if k != "user"}
        return data

    async def interact(
        self,
        group: str,
        subcommand: str,
        options: dict[str, str] | None = None,
        *,
        channel_id: int | None = None,
        user: dict[str, Any] | None = None,
        admin: bool = False,
        interaction_id: int | None = None,
    ) -> FakeInteraction:
        """A user runs ``/group subcommand option:value``: dispatches INTERACTION_CREATE (type 2)."""
        record, payload = self.interaction_data(
            group,
            subcommand,
            options,
            channel_id=channel_id,
            user=user,
            admin=admin,
            interaction_id=interaction_id,
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    def interaction_data(
        self,
        group: str,
        subcommand: str,
        options: dict[str, Any] | None = None,
        *,
        channel_id: int | None = None,
        user: dict[str, Any] | None = None,
        admin: bool = False,
        interaction_id: int | None = None,
    ) -> tuple[FakeInteraction, dict[str, Any]]:
        """The INTERACTION_CREATE data of ``/group subcommand option:value`` (recorded, not yet dispatched);
        an option's value is a string unless given otherwise."""
        channel_id = channel_id or self.channel_id
        user = user or self.owner
        record = FakeInteraction(
            interaction_id or self.snowflake(),
            uuid.uuid4().hex + uuid.uuid4().hex,
            channel_id,
            time.monotonic(),
        )
        self.interactions.setdefault(record.id, record)
        record = self.interactions[record.id]
        scope = "global" if str(self.guild_id) not in self.commands else str(self.guild_id)
        command_id = next(
            (c["id"] for c in self.commands.get(scope, []) if c["name"] == group), str(self.snowflake())
        )
        data: dict[str, Any] = {
            "id": command_id,
            "name": group,
            "type": 1,
            "options": [
                {
                    "name": subcommand,
                    "type": 1,
                    "options": [{"name": k, "type": 3, "value": v} for k, v in (options or {}).items()],
                }
            ],
        }
        payload: dict[str, Any] = {
            "id": str(record.id),
            "application_id": str(self.app_id),
            "type": 2,
            "data": data,
            "channel_id": str(channel_id),
            "token": record.token,
            "version": 1,
            "locale": "en-US",
            "app_permissions": ALL_PERMISSIONS,
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if self._guild_of(channel_id) is not None:
            data["guild_id"] = str(self.guild_id)
        self._where_and_who(payload, channel_id, user, admin)
        return record, payload

    def _where_and_who(
        self, payload: dict[str, Any], channel_id: int, user: dict[str, Any], admin: bool
    ) -> None:
        """An interaction's channel and its user: a ``member`` with its ``permissions`` in a server (Manage
        Server when ``admin``), a ``user`` in a DM."""
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            permissions = int(MEMBER_PERMISSIONS) | (MANAGE_GUILD if admin else 0)
            channel = self.channels.get(channel_id) or self.threads[channel_id]
            payload.update(
                guild_id=str(guild_id),
                guild_locale="en-US",
                channel={**channel, "permissions": str(permissions)},
                member={**self.member(user, admin=admin), "permissions": str(permissions)},
                authorizing_integration_owners={"0": str(guild_id)},
                context=0,
            )
        else:
            payload.update(
                channel=self.dm_channels[channel_id],
                user=user,
                authorizing_integration_owners={"1": user["id"]},
                context=1,
            )

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user: dict[str, Any] | None = None,
        admin: bool = False,
        component_type: int = 2,
    ) -> FakeInteraction:
        """A user clicks the button ``custom_id`` on ``message_id``: dispatches INTERACTION_CREATE (type 3,
        MESSAGE_COMPONENT) carrying the message as it is now, components included."""
        record, payload = self.click_data(
            message_id, custom_id, user=user, admin=admin, component_type=component_type
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    def click_data(
        self,
        message_id: int,
        custom_id: str,
        *,
        user: dict[str, Any] | None = None,
        admin: bool = False,
        component_type: int = 2,
    ) -> tuple[FakeInteraction, dict[str, Any]]:
        """The INTERACTION_CREATE data of a click (recorded, not yet dispatched); see ``click``."""
        message = self.messages[message_id]
        user = user or self.owner
        record = FakeInteraction(
            self.snowflake(),
            uuid.uuid4().hex + uuid.uuid4().hex,
            message.channel_id,
            time.monotonic(),
            kind=3,
            message_id=message_id,
        )
        self.interactions[record.id] = record
        payload: dict[str, Any] = {
            "id": str(record.id),
            "application_id": str(self.app_id),
            "type": 3,
            "data": {"custom_id": custom_id, "component_type": component_type},
            "channel_id": str(message.channel_id),
            "message": self._message_payload(message, self.bot_user),
            "token": record.token,
            "version": 1,
            "locale": "en-US",
            "app_permissions": ALL_PERMISSIONS,
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        self._where_and_who(payload, message.channel_id, user, admin)
        return record, payload

    async def interact_message(
        self,
        name: str,
        message_id: int,
        *,
        user: dict[str, Any] | None = None,
        admin: bool = False,
        interaction_id: int | None = None,
    ) -> FakeInteraction:
        """A user picks message command ``name`` (Apps -> ``name``) on message ``message_id``: dispatches
        INTERACTION_CREATE, an application command of type 3 (MESSAGE) with ``data.target_id`` and the message
        in ``data.resolved.messages``, as Discord's reference shows it."""
        message = self.messages[message_id]
        record, payload = self.interaction_data(
            name,
            "",
            None,
            channel_id=message.channel_id,
            user=user,
            admin=admin,
            interaction_id=interaction_id,
        )
        author = self.authors.get(message.id) or (
            self.bot_user if message.author_id == self.app_id else self.user(message.author_id, "someone")
        )
        data = payload["data"]
        data.pop("options", None)
        data.update(
            type=3,
            target_id=str(message.id),
            resolved={"messages": {str(message.id): self._message_payload(message, author)}},
        )
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    # ------------------------------------------------------------------ gateway

    def shard_of(self, guild_id: int | None) -> int:
        """The shard whose connection gets a guild's events (DMs: shard 0)."""
        if guild_id is None or not self._shards:
            return 0
        count = next(iter(self._shards.values()))[1]
        return (guild_id >> 22) % count

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        # a malformed (fuzzed) payload or guild id goes where a DM would: the client must cope with it
        fields = data if isinstance(data, dict) else {}
        guild = fields.get("id") if event == "GUILD_CREATE" else fields.get("guild_id")
        numeric = isinstance(guild, int | str) and str(guild).isascii() and str(guild).isdigit()
        found = self._shards.get(self.shard_of(int(guild) if numeric else None))
        ws = found[0] if found else self._ws
        if ws is None:
            raise RuntimeError("no gateway connection")
        await self._send(ws, event, data)

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self._seqs[ws] = seq = self._seqs.get(ws, 0) + 1
        await ws.send_str(json.dumps({"op": 0, "s": seq, "t": event, "d": data}))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        await ws.send_str(json.dumps({"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": 41250}}))
        shard: int | None = None
        async for frame in ws:
            message = json.loads(frame.data)
            op = message.get("op")
            if op == 1:  # HEARTBEAT
                await ws.send_str(json.dumps({"op": 11, "s": None, "t": None, "d": None}))
            elif op == 2:  # IDENTIFY
                if message["d"].get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                shard, count = message["d"].get("shard") or [0, 1]
                if not 0 <= shard < count:
                    await ws.close(code=4010, message=b"Invalid shard.")
                    break
                self.identify_payload = message["d"]
                self.identify_payloads.append(message["d"])
                self._shards[shard] = (ws, count)
                self._ws = ws
                await self._send(ws, "READY", self._ready_payload(shard, count))
                if self.shard_of(self.guild_id) == shard:
                    await self._send(ws, "GUILD_CREATE", self.guild_payload())
                self.identified.set()
            elif op == 6:  # RESUME: the session goes on where it stopped
                if message["d"].get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                shard, count = self._sessions.get(str(message["d"].get("session_id")), (0, 1))
                self._shards[shard] = (ws, count)
                self._ws = ws
                await self._send(ws, "RESUMED", {})
        if shard is not None and self._shards.get(shard, (None, 0))[0] is ws:
            del self._shards[shard]
        self._seqs.pop(ws, None)
        if self._ws is ws:
            self._ws = None
        return ws

    def _ready_payload(self, shard: int, count: int) -> dict[str, Any]:
        mine = self.shard_of(self.guild_id) == shard
        session = uuid.uuid4().hex
        self._sessions[session] = (shard, count)
        return {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}] if mine else [],
            "session_id": session,
            "resume_gateway_url": self.gateway_url,
            "shard": [shard, count],
            "application": {"id": str(self.app_id), "flags": self.application_flags},
            "private_channels": [],
            "relationships": [],
        }

    # ------------------------------------------------------------------ CDN

    async def _cdn(self, request: web.Request) -> web.Response:
        self.cdn_gets.append(request.path)
        found = self.cdn.get(request.path)
        if found is None:
            return web.Response(status=404, text="not found")
        mime, data = found
        return web.Response(body=data, content_type=mime)

    # ------------------------------------------------------------------ REST

    _ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("GET", ("users", "@me")),
        ("GET", ("oauth2", "applications", "@me")),
        ("GET", ("gateway",)),
        ("GET", ("gateway", "bot")),
        ("PUT", ("applications", "{id}", "commands")),
        ("PUT", ("applications", "{id}", "guilds", "{id}", "commands")),
        ("GET", ("channels", "{id}")),
        ("PATCH", ("channels", "{id}")),
        ("GET", ("channels", "{id}", "messages")),
        ("POST", ("channels", "{id}", "messages")),
        ("PATCH", ("channels", "{id}", "messages", "{id}")),
        ("DELETE", ("channels", "{id}", "messages", "{id}")),
        ("POST", ("channels", "{id}", "messages", "{id}", "threads")),
        ("POST", ("channels", "{id}", "threads")),
        ("POST", ("channels", "{id}", "typing")),
        ("POST", ("users", "@me", "channels")),
        ("POST", ("interactions", "{id}", "{token}", "callback")),
        ("POST", ("webhooks", "{id}", "{token}")),
        ("GET", ("webhooks", "{id}", "{token}", "messages", "@original")),
        ("PATCH", ("webhooks", "{id}", "{token}", "messages", "@original")),
        ("PATCH", ("webhooks", "{id}", "{token}", "messages", "{id}")),
        ("DELETE", ("webhooks", "{id}", "{token}", "messages", "{id}")),
    )

    def _match(self, method: str, parts: list[str]) -> tuple[str, list[str]] | None:
        for route_method, template in self._ROUTES:
            if route_method != method or len(template) != len(parts):
                continue
            params: list[str] = []
            for want, got in zip(template, parts, strict=True):
                if want in ("{id}", "{token}"):
                    params.append(got)
                elif want != got:
                    break
            else:
                return "/" + "/".join(template), params
        return None

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return _json({"message": message, "code": code}, status=status)

    async def _rest(self, request: web.Request) -> web.Response:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        matched = self._match(request.method, parts)
        body, files = await self._body(request)
        call = Call(request.method, matched[0] if matched else request.path, request.path, time.monotonic())
        call.json, call.files = body, files
        self.calls.append(call)
        if matched is None:
            call.status = 404
            return self._error(404, 0, "404: Not Found")
        route, params = matched
        webhook = route.startswith(("/webhooks", "/interactions"))
        if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            call.status = 401
            return self._error(401, 0, "401: Unauthorized")
        for index, (method, limited_route, retry_after) in enumerate(self._rate_limits):
            if method == request.method and limited_route == route:
                del self._rate_limits[index]
                call.status = 429
                return _json(
                    {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
                    status=429,
                    headers={
                        "Via": "1.1 google",
                        "Retry-After": str(max(1, round(retry_after))),
                        "X-RateLimit-Limit": "5",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                        "X-RateLimit-Bucket": uuid.uuid5(uuid.NAMESPACE_URL, route).hex,
                        "X-RateLimit-Scope": "user",
                    },
                )
        name = (
            "_h_"
            + request.method.lower()
            + "".join(
                "_" + ("x" if p in ("{id}", "{token}") else p.replace("@", "at"))
                for p in route.strip("/").split("/")
            )
        )
        handler = getattr(self, name)
        response: web.Response = await handler(params, body, files, request)
        call.status = response.status
        return response

    @staticmethod
    async def _body(request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
        files: list[tuple[str, bytes]] = []
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files.append((part.filename or "file", bytes(await part.read())))  # type: ignore[union-attr]
            return payload, files
        raw = await request.read()
        return (json.loads(raw) if raw else None), files

    # -- handlers: one per route; names follow the route ({id}/{token} -> x)

    async def _h_get_users_atme(self, *_: Any) -> web.Response:
        return _json({**self.bot_user, "verified": True, "mfa_enabled": False, "locale": "en-US"})

    async def _h_get_oauth2_applications_atme(self, *_: Any) -> web.Response:
        return _json(
            {
                "id": str(self.app_id),
                "name": "Threadwise",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.owner,
                "summary": "",
                "verify_key": "0" * 64,
                "team": None,
                "flags": self.application_flags,
                "bot": self.bot_user,
                "interactions_endpoint_url": None,
            }
        )

    async def _h_get_gateway(self, *_: Any) -> web.Response:
        return _json({"url": self.gateway_url.rstrip("/")})

    async def _h_get_gateway_bot(self, *_: Any) -> web.Response:
        return _json(
            {
                "url": self.gateway_url.rstrip("/"),
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    def _register(self, scope: str, commands: list[dict[str, Any]]) -> web.Response:
        registered = []
        for command in commands:
            registered.append(
                {
                    "id": str(self.snowflake()),
                    "application_id": str(self.app_id),
                    "version": str(self.snowflake()),
                    "type": command.get("type", 1),
                    "default_member_permissions": command.get("default_member_permissions"),
                    "dm_permission": command.get("dm_permission", True),
                    "nsfw": command.get("nsfw", False),
                    "description": "",  # Discord answers "" for a context menu, which sends none
                    **command,
                    **({"guild_id": scope} if scope != "global" else {}),
                }
            )
        self.commands[scope] = registered
        return _json(registered)

    async def _h_put_applications_x_commands(self, params: list[str], body: Any, *_: Any) -> web.Response:
        return self._register("global", body)

    async def _h_put_applications_x_guilds_x_commands(
        self, params: list[str], body: Any, *_: Any
    ) -> web.Response:
        return self._register(params[1], body)

    async def _h_get_channels_x(self, params: list[str], *_: Any) -> web.Response:
        channel_id = int(params[0])
        found = (
            self.channels.get(channel_id) or self.threads.get(channel_id) or self.dm_channels.get(channel_id)
        )
        if found is None:
            return self._error(404, 10003, "Unknown Channel")
        return _json(found)

    async def _h_patch_channels_x(self, params: list[str], body: Any, *_: Any) -> web.Response:
        """Modify Channel: a thread's name (what the bot changes)."""
        channel_id = int(params[0])
        found = self.channels.get(channel_id) or self.threads.get(channel_id)
        if found is None:
            return self._error(404, 10003, "Unknown Channel")
        name = (body or {}).get("name")
        if name is not None:
            if not isinstance(name, str) or not 1 <= len(name) <= 100:
                return self._error(
                    400, 50035, "Invalid Form Body: name: Must be between 1 and 100 in length."
                )
            found["name"] = name
        return _json(found)

    def _known_channel(self, channel_id: int) -> bool:
        return channel_id in self.channels or channel_id in self.threads or channel_id in self.dm_channels

    async def _h_get_channels_x_messages(
        self, params: list[str], _body: Any, _files: Any, request: web.Request
    ) -> web.Response:
        """Get Channel Messages: newest first, older than ``before``, at most ``limit`` (1-100; 50)."""
        channel_id = int(params[0])
        if not self._known_channel(channel_id):
            return self._error(404, 10003, "Unknown Channel")
        limit = int(request.query.get("limit", "50"))
        if not 1 <= limit <= 100:
            return self._error(400, 50035, "Invalid Form Body: limit: int value should be between 1 and 100.")
        before = int(request.query.get("before", str(1 << 63)))
        found = sorted(
            (
                m
                for m in self.messages.values()
                if m.channel_id == channel_id and m.id < before and not m.deleted and not m.ephemeral
            ),
            key=lambda m: m.id,
            reverse=True,
        )[:limit]
        return _json(
            [
                self._message_payload(
                    m,
                    self.authors.get(m.id)
                    or (self.bot_user if m.author_id == self.app_id else self.user(m.author_id, "someone")),
                )
                for m in found
            ]
        )

    async def _h_post_channels_x_messages(
        self, params: list[str], body: Any, files: list[tuple[str, bytes]], _request: web.Request
    ) -> web.Response:
        channel_id = int(params[0])
        if not self._known_channel(channel_id):
            return self._error(404, 10003, "Unknown Channel")
        content = (body or {}).get("content") or ""
        if len(content) > 2000:
            return self._error(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
        bad = self._bad_components(body)
        if bad is not None:
            return bad
        message = FakeMessage(self.snowflake(), channel_id, self.app_id, content, files=files)
        message.components = list((body or {}).get("components") or [])
        self.messages[message.id] = message
        if self.on_written is not None:
            await self.on_written(message)
        return _json(self._message_payload(message, self.bot_user))

    def _bad_components(self, body: Any) -> web.Response | None:
        """Discord's checks of ``components`` (buttons in action rows): at most 5 rows of 5 buttons, each with
        a ``custom_id`` of 1-100 characters unique in the message (or a ``url``), labels up to 80."""
        rows = (body or {}).get("components")
        if rows is None:
            return None
        seen: set[str] = set()
        problem = ""
        if not isinstance(rows, list) or len(rows) > 5:
            problem = "components: Must be 5 or fewer in length."
        for row in rows if not problem else []:
            buttons = row.get("components") if isinstance(row, dict) and row.get("type") == 1 else None
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 5:
                problem = "components.0.components: Must be between 1 and 5 in length."
                break
            for button in buttons:
                custom_id = button.get("custom_id")
                if button.get("type") != 2 or (custom_id is None and "url" not in button):
                    problem = "components.0.components.0: Invalid component."
                elif custom_id is not None and not (
                    isinstance(custom_id, str) and 1 <= len(custom_id) <= 100
                ):
                    problem = "components.0.components.0.custom_id: Must be between 1 and 100 in length."
                elif custom_id in seen:
                    problem = "components.0.components.0.custom_id: Component custom id cannot be duplicated"
                elif len(str(button.get("label") or "")) > 80:
                    problem = "components.0.components.0.label: Must be 80 or fewer in length."
                seen.add(str(custom_id))
        return self._error(400, 50035, f"Invalid Form Body: {problem}") if problem else None

    def _edit(self, message: FakeMessage, body: Any, files: list[tuple[str, bytes]]) -> web.Response:
        body = body or {}
        bad = self._bad_components(body)
        if bad is not None:
            return bad
        if "components" in body:
            message.components = list(body["components"] or [])
        if "content" in body:
            content = body["content"] or ""
            if len(content) > 2000:
                return self._error(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
            message.content = content
        if files:
            message.files = [*message.files, *files]
        if "components" in body:
            message.components = list(body["components"] or [])
        message.edits += 1
        message.loading = False
        return _json(self._message_payload(message, self.bot_user))

    async def _h_patch_channels_x_messages_x(
        self, params: list[str], body: Any, files: list[tuple[str, bytes]], _request: web.Request
    ) -> web.Response:
        message = self.messages.get(int(params[1]))
        if message is None or message.deleted or message.channel_id != int(params[0]):
            return self._error(404, 10008, "Unknown Message")
        if message.author_id != self.app_id:
            return self._error(403, 50005, "Cannot edit a message authored by another user")
        response = self._edit(message, body, files)
        if self.on_written is not None and response.status == 200:
            await self.on_written(message)
        return response

    async def _h_delete_channels_x_messages_x(self, params: list[str], *_: Any) -> web.Response:
        message = self.messages.get(int(params[1]))
        if message is None or message.deleted:
            return self._error(404, 10008, "Unknown Message")
        message.deleted = True
        return web.Response(status=204)

    def _open_thread(self, thread_id: int, parent_id: int, name: str) -> web.Response:
        if thread_id in self.threads:
            return self._error(400, 160004, "A thread has already been created for this message")
        thread = self._thread(thread_id, parent_id, name[:100], self.app_id)
        self.threads[thread_id] = thread
        self._spawn(self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}))
        return _json(thread, status=201)

    async def _h_post_channels_x_messages_x_threads(
        self, params: list[str], body: Any, *_: Any
    ) -> web.Response:
        parent_id, message_id = int(params[0]), int(params[1])
        if parent_id not in self.channels:
            return self._error(400, 50024, "Cannot execute action on this channel type")
        if message_id not in self.messages:
            return self._error(404, 10008, "Unknown Message")
        return self._open_thread(message_id, parent_id, body["name"])

    async def _h_post_channels_x_threads(self, params: list[str], body: Any, *_: Any) -> web.Response:
        parent_id = int(params[0])
        if parent_id not in self.channels:
            return self._error(400, 50024, "Cannot execute action on this channel type")
        return self._open_thread(self.snowflake(), parent_id, body["name"])

    async def _h_post_channels_x_typing(self, params: list[str], *_: Any) -> web.Response:
        return web.Response(status=204)

    async def _h_post_users_atme_channels(self, params: list[str], body: Any, *_: Any) -> web.Response:
        recipient = str(body["recipient_id"])
        for channel in self.dm_channels.values():
            if channel["recipients"][0]["id"] == recipient:
                return _json(channel)
        return self._error(400, 50007, "Cannot send messages to this user")

    async def _h_post_interactions_x_x_callback(
        self, params: list[str], body: Any, files: list[tuple[str, bytes]], _request: web.Request
    ) -> web.Response:
        record = self.interactions.get(int(params[0]))
        if record is None or record.token != params[1]:
            return self._error(404, 10062, "Unknown interaction")
        if record.callback_type is not None:
            return self._error(400, 40060, "Interaction has already been acknowledged.")
        kind = int(body["type"])
        data = body.get("data") or {}
        if kind in (6, 7) and record.kind != 3:
            return self._error(400, 40004, "Interaction callback type is not valid for this interaction")
        bad = self._bad_components(data)
        if bad is not None:
            return bad
        record.callback_type, record.callback_at = kind, time.monotonic()
        record.ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL)
        interaction = {
            "id": str(record.id),
            "type": record.kind,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": record.ephemeral,
        }
        clicked = self.messages.get(record.message_id or 0)
        if kind in (6, 7) and clicked is not None:  # (deferred) update of the message the button is on
            record.original_id = clicked.id
            interaction["response_message_id"] = str(clicked.id)
            if kind == 7:
                self._edit(clicked, data, files)
                return _json(
                    {
                        "interaction": interaction,
                        "resource": {"type": kind, "message": self._message_payload(clicked, self.bot_user)},
                    }
                )
        if kind not in (4, 5):  # no message (e.g. a modal or an update): nothing to show
            return _json({"interaction": interaction})
        message = FakeMessage(
            self.snowflake(),
            record.channel_id,
            self.app_id,
            data.get("content") or "",
            files=files,
            ephemeral=record.ephemeral,
            interaction_id=record.id,
            loading=kind == 5,
        )
        self.messages[message.id] = message
        record.original_id = message.id
        interaction["response_message_id"] = str(message.id)
        return _json(
            {
                "interaction": interaction,
                "resource": {"type": kind, "message": self._message_payload(message, self.bot_user)},
            }
        )

    def _interaction_by_token(self, app_id: str, token: str) -> FakeInteraction | None:
        if app_id != str(self.app_id):
            return None
        return next((r for r in self.interactions.values() if r.token == token), None)

    async def _h_post_webhooks_x_x(
        self, params: list[str], body: Any, files: list[tuple[str, bytes]], _request: web.Request
    ) -> web.Response:
        record = self._interaction_by_token(params[0], params[1])
        if record is None or record.callback_type is None:
            return self._error(404, 10015, "Unknown Webhook")
        body = body or {}
        content = body.get("content") or ""
        if len(content) > 2000:
            return self._error(400, 50035, "Invalid Form Body: content: Must be 2000 or fewer in length.")
        flags = int(body.get("flags") or 0)
        bad = self._bad_components(body)
        if bad is not None:
            return bad
        components = list(body.get("components") or [])
        original = self.messages.get(record.original_id or 0)
        if original is not None and original.loading and not original.deleted:
            # the first follow-up after a deferral replaces the "thinking…" message
            original.content, original.files, original.loading = content, files, False
            original.components = components
            original.edits += 1
            return _json(self._message_payload(original, self.bot_user))
        message = FakeMessage(
            self.snowflake(),
            record.channel_id,
            self.app_id,
            content,
            files=files,
            ephemeral=bool(flags & EPHEMERAL),
            interaction_id=record.id,
            components=components,
        )
        self.messages[message.id] = message
        record.followup_ids.append(message.id)
        return _json(self._message_payload(message, self.bot_user))

    async def _h_get_webhooks_x_x_messages_atoriginal(self, params: list[str], *_: Any) -> web.Response:
        record = self._interaction_by_token(params[0], params[1])
        if record is None or record.original_id is None:
            return self._error(404, 10008, "Unknown Message")
        return _json(self._message_payload(self.messages[record.original_id], self.bot_user))

    async def _h_patch_webhooks_x_x_messages_atoriginal(
        self, params: list[str], body: Any, files: list[tuple[str, bytes]], _request: web.Request
    ) -> web.Response:
        record = self._interaction_by_token(params[0], params[1])
        if record is None or record.original_id is None:
            return self._error(404, 10008, "Unknown Message")
        return self._edit(self.messages[record.original_id], body, files)

    async def _h_patch_webhooks_x_x_messages_x(
        self, params: list[str], body: Any, files: list[tuple[str, bytes]], _request: web.Request
    ) -> web.Response:
        record = self._interaction_by_token(params[0], params[1])
        message = self.messages.get(int(params[2]))
        if record is None or message is None or message.interaction_id != record.id:
            return self._error(404, 10008, "Unknown Message")
        return self._edit(message, body, files)

    async def _h_delete_webhooks_x_x_messages_x(self, params: list[str], *_: Any) -> web.Response:
        record = self._interaction_by_token(params[0], params[1])
        if record is None:
            return self._error(404, 10015, "Unknown Webhook")
        wanted = record.original_id if params[2] == "@original" else int(params[2])
        message = self.messages.get(wanted or 0)
        if message is None:
            return self._error(404, 10008, "Unknown Message")
        message.deleted = True
        return web.Response(status=204)
