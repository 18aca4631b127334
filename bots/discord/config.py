"""Discord adapter options (``DISCORD_*``, ``THREADWISE_DISCORD_*``), taken from the service settings once."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from core.settings import Settings


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    """``guilds``: guild ids whose commands are synced directly (instant updates while developing; otherwise
    commands are global, which Discord may take a while to show). ``sharded``: an ``AutoShardedClient`` (bots
    in thousands of guilds). ``shard_ids`` of ``shard_count``: the gateway shards this process runs, so
    several processes split them (an ``AutoShardedClient`` with exactly those shards). ``edit_interval``:
    seconds between edits of a streamed reply."""

    bot_token: SecretStr | None = None
    api_url: str = "https://discord.com/api/v10"
    gateway_url: str | None = None
    guilds: tuple[int, ...] = ()
    sharded: bool = False
    shard_ids: tuple[int, ...] = ()
    shard_count: int | None = None
    edit_interval: float = 1.0
    ready_timeout: float = 60.0
    modlog_channel: int | None = None
    max_files: int = 4
    max_file_bytes: int = 20 * 1024 * 1024
    drain_seconds: float = 30.0  # at shutdown: how long running turns get to finish

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordOptions:
        discord, tw, safety = settings.discord, settings.threadwise, settings.safety
        return cls(
            bot_token=discord.bot_token,
            api_url=discord.api_url,
            gateway_url=discord.gateway_url,
            guilds=tw.discord_guilds,
            sharded=tw.discord_sharded,
            shard_ids=tw.discord_shard_ids,
            shard_count=tw.discord_shard_count,
            edit_interval=tw.discord_edit_interval,
            ready_timeout=tw.discord_ready_timeout,
            modlog_channel=tw.discord_modlog_channel,
            max_files=safety.max_attachments,
            max_file_bytes=int(safety.max_attachment_mb * 1024 * 1024),
            drain_seconds=tw.drain_seconds,
        )
