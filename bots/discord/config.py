"""Discord adapter options (``THREADWISE_DISCORD_*``), taken from the service settings."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings


@dataclass(frozen=True, slots=True)
class DiscordOptions:
    """``guilds``: guild ids whose commands are synced directly (instant updates while developing; otherwise
    commands are global, which Discord may take a while to show). ``sharded``: an ``AutoShardedClient`` (bots
    in thousands of guilds). ``edit_interval``: seconds between edits of a streamed reply."""

    guilds: tuple[int, ...] = ()
    sharded: bool = False
    edit_interval: float = 1.0
    ready_timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordOptions:
        tw = settings.threadwise
        return cls(tw.discord_guilds, tw.discord_sharded, tw.discord_edit_interval, tw.discord_ready_timeout)
