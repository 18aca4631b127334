"""The `threadwise` command line: chat, serve, migrate, doctor, admin. Composed in in bots/bootstrap.py.

Each command imports what it uses when it runs: `--help`, `migrate` and `admin` load no model, chat or MCP
SDK.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bots.admin_args import add_admin_commands

if TYPE_CHECKING:
    from bots.timeline import Timeline
    from core.settings import Settings

log = logging.getLogger("threadwise")

EXIT_CONFIG = 2


async def run_chat(settings: Settings, conversation: str | None, model: str | None) -> int:
    import uuid

    from bots.bootstrap import open_core
    from bots.console import PLATFORM as CONSOLE
    from bots.console import ConsoleChat, ConsoleResolver
    from core.turn.recovery import beating, sweep_now

    async with open_core(settings, model=model) as core:
        core.recovery.register(CONSOLE, ConsoleResolver())  # a chat killed mid-turn blocks no later one
        async with beating(core.recovery):
            await sweep_now(core.recovery, exclusive=core.database.is_sqlite)
            chat = ConsoleChat(
                core.turns, conversation=conversation or f"session-{uuid.uuid4().hex[:8]}", model=model
            )
            return await chat.run()


async def run_admin_command(settings: Settings, args: argparse.Namespace) -> int:
    from bots.admin_cli import run_admin
    from bots.bootstrap import open_admin_shell

    async with open_admin_shell(settings) as shell:
        return await run_admin(
            shell.admin,
            shell.retention,
            args,
            retention_days=settings.safety.retention_days,
            tools=shell.tools,
            personas=shell.personas,
        )


async def run_migrate(settings: Settings, revision: str | None, downgrade: str | None) -> int:
    from core.db import migrate
    from core.db.session import Database

    async with Database.from_url(settings.service.database_url) as database:
        if downgrade:
            await migrate.downgrade(database.engine, downgrade)
        else:
            await migrate.upgrade(database.engine, revision or "head")
        current = await migrate.current_revision(database.engine)
    print(f"database at revision {current or 'base'} (newest: {migrate.head_revision()})")
    return 0


async def run_serve(settings: Settings, timeline: Timeline | None = None) -> int:
    import asyncio

    from bots.bootstrap import configured_platforms, serving

    if timeline is not None:
        timeline.mark("imports")

    platforms = configured_platforms(settings)
    if not platforms:
        print(
            "threadwise serve: no chat platform is configured. Set SLACK_BOT_TOKEN with SLACK_APP_TOKEN "
            "(Socket Mode) or SLACK_SIGNING_SECRET (HTTP), or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET with "
            "SLACK_SIGNING_SECRET (installs into many workspaces), and/or DISCORD_BOT_TOKEN. "
            "For a conversation in this terminal, run `threadwise chat`.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    async with serving(settings, platforms, timeline=timeline) as http:
        log.info("serving %s; health on :%s/healthz", ", ".join(platforms), http.port)
        await asyncio.Event().wait()  # until SIGTERM/SIGINT cancels the task
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadwise", description="AI assistant service for team chat.")
    parser.add_argument("--env-file", default=".env", help="file with settings (default: .env if present)")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser(
        "chat", help="talk to the assistant in this terminal (reads stdin line by line)"
    )
    chat.add_argument("--conversation", help="name of a conversation to start or resume across runs")
    chat.add_argument("--model", help="model for this session (default: THREADWISE_MODEL)")
    commands.add_parser("serve", help="run every chat adapter whose credentials are set, plus /healthz")
    mig = commands.add_parser("migrate", help="apply database migrations")
    mig.add_argument("--revision", help="upgrade to this revision (default: head)")
    mig.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION (e.g. base)")
    commands.add_parser(
        "doctor", help="check the configuration end to end: tokens, scopes, model, database, Redis, paths"
    )
    add_admin_commands(commands)
    return parser


def _run_until_signal(coro: object) -> int:
    import asyncio

    async def main() -> int:
        assert asyncio.iscoroutine(coro)
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM,):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return int(await task)
        except asyncio.CancelledError:
            return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    from bots.timeline import Timeline

    timeline = Timeline()  # serve logs where its start-up went
    args = _parser().parse_args(argv)
    from core.domain.errors import BotError
    from core.money.pricing import PriceFileError
    from core.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.env_file)
    except SettingsError as exc:
        if args.command == "doctor":  # every wrong variable is one of its findings
            from bots.doctor import report_settings_error

            return report_settings_error(exc)
        print(f"threadwise: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from bots import logs

    quiet = {"chat": "WARNING", "doctor": "ERROR"}  # what they print is the news; their logs are not
    level = quiet.get(args.command, settings.threadwise.log_level)
    # The service logs JSON off a terminal; the commands a person runs (chat, admin, …) log text.
    log_format = settings.threadwise.log_format or (None if args.command == "serve" else "text")
    logs.configure(level, log_format)
    timeline.mark("settings")
    try:
        if args.command == "chat":
            return _run_until_signal(run_chat(settings, args.conversation, args.model))
        if args.command == "admin":
            return _run_until_signal(run_admin_command(settings, args))
        if args.command == "doctor":
            from bots.doctor import run_doctor

            return _run_until_signal(run_doctor(settings))
        if args.command == "migrate":
            return _run_until_signal(run_migrate(settings, args.revision, args.downgrade))
        return _run_until_signal(run_serve(settings, timeline))
    except BotError as exc:  # bad input or configuration found while starting (e.g. no API key)
        print(f"threadwise: {exc.user_message} {exc.detail or ''}".rstrip(), file=sys.stderr)
        return EXIT_CONFIG
    except (PriceFileError, SettingsError) as exc:
        print(f"threadwise: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
