"""`threadwise doctor` for Discord: the bot token (``GET /users/@me``, as discord.py logs in) and the Message
Content intent (the application's flags, ``GET /oauth2/applications/@me``), over REST only: no gateway
session is opened, so a running service is not disturbed."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
from discord.http import HTTPClient

from bots.checkup.findings import Finding, ok, skipped, wrong
from bots.discord.client import use_endpoints
from bots.readiness import describe
from core.settings import Settings

MESSAGE_CONTENT = discord.ApplicationFlags.gateway_message_content.flag
MESSAGE_CONTENT_LIMITED = discord.ApplicationFlags.gateway_message_content_limited.flag


async def discord_bot(settings: Settings) -> list[Finding]:
    config = settings.discord
    if config.bot_token is None:
        return [skipped("discord", "DISCORD_BOT_TOKEN is not set")]
    restore = use_endpoints(config.api_url, config.gateway_url)
    http = HTTPClient(asyncio.get_running_loop())
    try:
        try:
            me = await http.static_login(config.bot_token.get_secret_value())
        except discord.LoginFailure:
            return [
                wrong(
                    "discord",
                    "DISCORD_BOT_TOKEN: Discord refused it (401): copy the token from the Developer Portal "
                    "(your application, Bot, Reset Token)",
                )
            ]
        except (aiohttp.ClientError, OSError, discord.HTTPException) as exc:
            return [wrong("discord", f"DISCORD_API_URL: cannot reach {config.api_url} ({describe(exc)})")]
        findings = [ok("discord", f"DISCORD_BOT_TOKEN accepted: bot {me.get('username')} ({me.get('id')})")]
        application = await http.application_info()
        flags = int(application.get("flags") or 0)
        if flags & (MESSAGE_CONTENT | MESSAGE_CONTENT_LIMITED):
            findings.append(ok("discord intents", "Message Content intent enabled"))
        else:
            findings.append(
                wrong(
                    "discord intents",
                    "the Message Content intent is off, so thread follow-ups cannot be read: enable it in "
                    "the Developer Portal (your application, Bot, Privileged Gateway Intents, Message "
                    "Content)",
                )
            )
        return findings
    finally:
        await http.close()
        restore()
