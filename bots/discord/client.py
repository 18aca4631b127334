"""The Discord adapter's lifetime: `open_discord(core, http)` logs in, syncs the slash commands, connects to
the gateway and waits until ready; leaving the block lets running turns finish, then disconnects.

Endpoints: discord.py reads its REST base from ``discord.http.Route.BASE`` and its gateway from
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``. Both are class attributes, so ``DISCORD_API_URL`` and
``DISCORD_GATEWAY_URL`` apply to the whole process while the adapter runs (one Discord bot per process); the
previous values come back when it stops. A plain ``Client`` never asks ``/gateway/bot``; the sharded client
does, at the configured REST base.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bots.api_calls import counting, discord_route
from bots.discord.approvals import PrivatePrompts, register_approvals
from bots.discord.clicks import Clicks
from bots.discord.commands import AdminCommands, AiCommands
from bots.discord.config import DiscordOptions
from bots.discord.context_menu import AskMenu
from bots.discord.events import MessageEvents
from bots.discord.gateway import guard_gateway
from bots.discord.replier import NO_MENTIONS, DiscordResolver
from bots.discord.tree import CommandTree
from bots.inflight import InFlight
from core.domain.errors import BotError
from core.guards.modlog import ModerationNotice

if TYPE_CHECKING:
    from bots.http import HttpServer
    from bots.services import ChatServices

log = logging.getLogger(__name__)


def intents() -> discord.Intents:
    """Guilds (channel and thread cache), guild and DM messages, and Message Content: a privileged intent
    to switch on in the Developer Portal (Bot -> Privileged Gateway Intents), needed to read thread
    follow-ups that do not mention the bot."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = True
    return wanted


def use_endpoints(api_url: str, gateway_url: str | None) -> Callable[[], None]:
    """Points discord.py (process-wide) at ``api_url`` and ``gateway_url``; returns how to undo it."""
    previous_base, previous_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_url.rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        Route.BASE = previous_base
        DiscordWebSocket.DEFAULT_GATEWAY = previous_gateway

    return restore


def build_client(
    services: ChatServices,
    options: DiscordOptions,
    *,
    inflight: InFlight,
    guild_ready_timeout: float = 2.0,
    private: PrivatePrompts | None = None,
) -> tuple[discord.Client, app_commands.CommandTree[Any]]:
    """The client and its commands; ``private``: where `/ai ask` turns ask for tool approvals (the
    prompter's, see bots/discord/approvals.py)."""
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = (
        False  # no voice here: no warning about it
    )
    common: dict[str, Any] = {
        "intents": intents(),
        "allowed_mentions": discord.AllowedMentions.none(),
        "chunk_guilds_at_startup": False,
        "guild_ready_timeout": guild_ready_timeout,
        "http_trace": counting(services.turns.metrics, "discord", discord_route),
    }
    client: discord.Client
    if options.shard_count is not None:  # this process's share of the shards (THREADWISE_DISCORD_SHARD_*)
        client = discord.AutoShardedClient(
            shard_ids=list(options.shard_ids), shard_count=options.shard_count, **common
        )
    elif options.sharded:  # every shard, as many as Discord recommends (GET /gateway/bot)
        client = discord.AutoShardedClient(**common)
    else:
        client = discord.Client(**common)
    guard_gateway(client, inflight)
    clicks = Clicks(services, inflight=inflight, edit_interval=options.edit_interval)
    client.add_dynamic_items(*clicks.buttons.items)  # clicks on messages sent before a restart work too
    buttons = clicks.buttons if services.buttons is not None else None
    tree: app_commands.CommandTree[Any] = CommandTree(client, services.commands)
    tree.add_command(
        AiCommands(
            services, inflight=inflight, edit_interval=options.edit_interval, buttons=buttons, private=private
        )
    )
    tree.add_command(AdminCommands(services, inflight=inflight))
    menu = AskMenu(services, inflight=inflight, edit_interval=options.edit_interval, buttons=buttons)
    tree.add_command(menu.command)
    events = MessageEvents(services, client, options, inflight=inflight, buttons=buttons)

    async def on_message(message: discord.Message) -> None:
        await events.on_message(message)

    client.event(on_message)
    return client, tree


async def sync_commands(tree: app_commands.CommandTree[Any], guilds: tuple[int, ...]) -> None:
    """Registers the slash commands: in each of ``guilds`` (instant) or globally."""
    if not guilds:
        synced = await tree.sync()
        log.info("Discord: %d global slash command group(s) synced", len(synced))
        return
    for guild_id in guilds:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        try:
            synced = await tree.sync(guild=guild)
        except discord.Forbidden as exc:  # the bot was invited without the applications.commands scope
            log.error("Discord: cannot register commands in guild %s (%s); re-invite the bot", guild_id, exc)
            continue
        log.info("Discord: %d slash command group(s) synced to guild %s", len(synced), guild_id)


async def _connected(client: discord.Client, connection: asyncio.Task[None], within: float) -> None:
    """Returns once the client is ready; raises what stopped the connection, or on timeout."""
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait({ready, connection}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if connection in done:
        error = connection.exception()
        if isinstance(error, discord.PrivilegedIntentsRequired):
            raise BotError(
                "Discord refused the Message Content intent.",
                detail="enable it in the Developer Portal: Bot, Privileged Gateway Intents, Message Content",
            )
        raise BotError("Could not connect to Discord.", detail=f"the gateway connection ended: {error!r}")
    if ready not in done:
        raise BotError("Could not connect to Discord.", detail=f"not ready after {within:.0f} s")


@contextlib.asynccontextmanager
async def open_discord(
    services: ChatServices,
    options: DiscordOptions,
    http: HttpServer,
    *,
    guild_ready_timeout: float = 2.0,
) -> AsyncIterator[None]:
    """An adapter factory (see bots/bootstrap.py): connected and answering inside the block."""
    if options.bot_token is None:
        raise BotError("DISCORD_BOT_TOKEN is not set.")
    restore = use_endpoints(options.api_url, options.gateway_url)
    inflight = InFlight("Discord")
    private = PrivatePrompts()  # `/ai ask` turns running now: their approvals are asked privately
    client, tree = build_client(
        services, options, inflight=inflight, guild_ready_timeout=guild_ready_timeout, private=private
    )
    connection: asyncio.Task[None] | None = None
    try:
        try:
            await client.login(options.bot_token.get_secret_value())
        except discord.LoginFailure as exc:
            raise BotError("Discord rejected DISCORD_BOT_TOKEN.", detail=str(exc)) from None
        await sync_commands(tree, options.guilds)
        connection = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        await _connected(client, connection, options.ready_timeout)
        user = client.user
        shards = f", shards {options.shard_ids} of {options.shard_count}" if options.shard_count else ""
        log.info(
            "Discord: connected as %s (%s) in %d guild(s)%s",
            user,
            user and user.id,
            len(client.guilds),
            shards,
        )
        modlog_channel = options.modlog_channel
        if modlog_channel is not None:
            services.modlog.register("discord", _modlog_sink(client, modlog_channel))
        services.recovery.register("discord", DiscordResolver(client))
        prompter = register_approvals(client, services.approvals, private)  # Approve / Deny of tool calls
        if services.approvals is not None and prompter is not None:
            services.approvals.register("discord", prompter)
        http.readiness.add("discord", gateway_status(client))
        yield
    finally:
        http.readiness.remove("discord")
        await inflight.close(options.drain_seconds)
        await services.modlog.drain()  # notices of the last turns, while the client can still post
        services.modlog.unregister("discord")
        if services.approvals is not None:
            services.approvals.unregister("discord")
        await client.close()
        if connection is not None:
            connection.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connection
        restore()


def gateway_status(client: discord.Client) -> Callable[[], Awaitable[str | None]]:
    """Readiness: the client is ready and every gateway connection (one per shard) is open; asks Discord
    nothing."""

    async def status() -> str | None:
        if client.is_closed():
            return "the client is closed"
        if not client.is_ready():
            return "the gateway session is not ready"
        if isinstance(client, discord.AutoShardedClient):
            down = sorted(shard_id for shard_id, shard in client.shards.items() if shard.is_closed())
            return f"gateway connection of shard(s) {down} lost (reconnecting)" if down else None
        if client.ws is None or not client.ws.open:
            return "gateway connection lost (reconnecting)"
        return None

    return status


def _modlog_sink(client: discord.Client, channel_id: int) -> Callable[[ModerationNotice], Awaitable[None]]:
    """Posts moderation notices to the mod-log channel; mentions are shown but nobody is pinged. Only
    notices of the mod-log channel's own server are posted there: other servers' members and channels are
    none of its moderators' business (DMs belong to no server and are left out too)."""

    async def post(notice: ModerationNotice) -> None:
        channel = client.get_channel(channel_id) or await client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise TypeError(f"THREADWISE_DISCORD_MODLOG_CHANNEL {channel_id} is not a text channel")
        guild = getattr(channel, "guild", None)
        if guild is None or str(guild.id) != notice.workspace_id:
            return
        text = notice.describe(user=f"<@{notice.user_id}>", channel=f"<#{notice.channel_id}>")
        await channel.send(f"\U0001f6a9 {text}", allowed_mentions=NO_MENTIONS)  # a triangular flag

    return post
