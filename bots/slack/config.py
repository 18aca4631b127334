"""Slack adapter options, taken from the service settings once, at the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from core.settings import Settings


@dataclass(frozen=True, slots=True)
class SlackOptions:
    bot_token: SecretStr | None
    app_token: SecretStr | None  # Socket Mode when set
    signing_secret: SecretStr | None  # HTTP events when there is no app token
    api_url: str
    admins: tuple[str, ...] = ()  # THREADWISE_ADMINS (platform:user_id)
    modlog_channel: str | None = None  # a channel id, or team:channel pairs (one per workspace)
    client_id: str | None = None  # distribution (OAuth) when there is no bot token
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None
    native_streaming: bool = True
    max_files: int = 4
    max_file_bytes: int = 20 * 1024 * 1024
    drain_seconds: float = 30.0  # at shutdown: how long running turns get to finish

    @property
    def oauth(self) -> bool:
        """Distribution: a bot token per workspace, installed through OAuth (no SLACK_BOT_TOKEN)."""
        return self.bot_token is None and self.client_id is not None and self.client_secret is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackOptions:
        slack, tw, safety = settings.slack, settings.threadwise, settings.safety
        return cls(
            bot_token=slack.bot_token,
            app_token=slack.app_token,
            signing_secret=slack.signing_secret,
            api_url=slack.api_url,
            admins=tw.admins,
            modlog_channel=tw.slack_modlog_channel,
            client_id=slack.client_id,
            client_secret=slack.client_secret,
            redirect_uri=tw.slack_redirect_uri,
            native_streaming=tw.slack_native_streaming,
            max_files=safety.max_attachments,
            max_file_bytes=int(safety.max_attachment_mb * 1024 * 1024),
            drain_seconds=tw.drain_seconds,
        )
