"""`threadwise doctor`: checks the configuration end to end with the same settings as `serve`, and prints one
line per check: ``ok``, ``skipped`` (not configured) or ``wrong`` (naming the variable to fix, and how).
Exit code 0 when every configured part works, 1 otherwise.

Checks run concurrently, each bounded in time; a platform's SDK is imported only when it is configured.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from bots.checkup.findings import Finding, bounded, wrong
from core.llm.provider_config import ProviderConfig
from core.settings import Settings, SettingsError

Check = Callable[[Settings], Awaitable[list[Finding]]]


async def _slack(settings: Settings) -> list[Finding]:
    from bots.checkup.findings import skipped

    if settings.slack.bot_token is None:
        return [skipped("slack", "SLACK_BOT_TOKEN is not set")]
    from bots.slack.checkup import slack

    return await bounded("slack", lambda: slack(settings), fix="check SLACK_API_URL")


async def _discord(settings: Settings) -> list[Finding]:
    from bots.checkup.findings import skipped

    if settings.discord.bot_token is None:
        return [skipped("discord", "DISCORD_BOT_TOKEN is not set")]
    from bots.discord.checkup import discord_bot

    return await bounded("discord", lambda: discord_bot(settings), fix="check DISCORD_API_URL")


async def _provider(settings: Settings) -> list[Finding]:
    from bots.checkup.provider import provider

    return await bounded("openai", lambda: provider(settings), fix="check OPENAI_BASE_URL")


async def _providers(settings: Settings) -> list[Finding]:
    """Each THREADWISE_PROVIDERS endpoint on its own line(s), checked concurrently, each bounded."""
    configs = settings.threadwise.provider_list()
    if not configs:
        return []
    from bots.checkup.provider import endpoint, provider_part

    def check(config: ProviderConfig) -> Awaitable[list[Finding]]:
        fix = f"check THREADWISE_PROVIDERS[{config.prefix!r}]"
        return bounded(provider_part(config), lambda: endpoint(settings, config), fix=fix)

    found = await asyncio.gather(*(check(config) for config in configs))
    return [finding for findings in found for finding in findings]


async def _storage(settings: Settings) -> list[Finding]:
    from bots.checkup import storage

    found = await asyncio.gather(storage.database(settings), storage.redis(settings))
    return [*found[0], *found[1], *storage.writable_paths(settings)]


async def _tokens(settings: Settings) -> list[Finding]:
    from bots.checkup.tokens import token_tables

    return await token_tables(settings.threadwise.model)


# printed in this order
CHECKS: tuple[Check, ...] = (_storage, _provider, _providers, _tokens, _slack, _discord)


async def diagnose(settings: Settings) -> list[Finding]:
    found = await asyncio.gather(*(check(settings) for check in CHECKS))
    return [finding for findings in found for finding in findings]


def report(findings: list[Finding], out: TextIO) -> int:
    width = max(len(finding.part) for finding in findings)
    for finding in findings:
        print(finding.line(width), file=out)
    wrong_parts = [finding for finding in findings if finding.state == "wrong"]
    if wrong_parts:
        print(
            f"\n{len(wrong_parts)} problem(s): fix the lines marked wrong, then run `threadwise doctor` "
            "again.",
            file=out,
        )
        return 1
    print("\nEverything configured works.", file=out)
    return 0


async def run_doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    return report(await diagnose(settings), out)


def report_settings_error(error: SettingsError, out: TextIO = sys.stdout) -> int:
    """Settings that do not load stop every other check: each wrong variable gets its line."""
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
    return report([wrong("settings", line) for line in lines], out)
