"""The bot scopes the app needs: exactly those of manifest.yml (tests/unit/test_slack_scopes.py keeps them
equal), so `threadwise doctor` can name what an installed app lacks without reading the manifest."""

from __future__ import annotations

BOT_SCOPES = (
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
