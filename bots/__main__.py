"""Composition root and CLI: settings -> database -> core services -> adapters, each owned by `async with`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fnmatch
import logging
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bots.admin_cli import add_admin_commands, run_admin
from bots.console import ConsoleChat
from bots.http import HttpServer
from core.admin.retention import Retention
from core.admin.service import AdminService
from core.commands.dispatch import Commands
from core.db import migrate
from core.db.session import Database
from core.domain.errors import BotError
from core.domain.ports import TurnGuard
from core.domain.types import IncomingMessage
from core.guards.audit import ModerationAudit
from core.guards.bans import BanGuard
from core.guards.channel_policy import ChannelPolicies
from core.guards.injection import InjectionGuard
from core.guards.input_limits import InputLimitGuard, InputLimits
from core.guards.moderation import ModerationGuard, ModerationPolicy, Moderator
from core.guards.modlog import ModLog
from core.guards.output_moderation import OutputModeration
from core.guards.rate_limit import RateLimitGuard, rate_limit_storage
from core.guards.redaction import RedactionGuard
from core.guards.redactor import Redactor
from core.llm.client import LLMClient
from core.llm.image_generation import ImageGenerator, ImageOptions
from core.llm.tokens import TokenCounter
from core.metrics import Metrics
from core.money.budgets import Budgets, defaults_from
from core.money.pricing import ModelPrice, PriceFileError, PriceTable, usd
from core.settings import Settings, SettingsError, load_settings
from core.tools.builtin import current_time_tool, generate_image_tool
from core.tools.calculator import calculator_tool
from core.tools.executor import ToolExecutor
from core.tools.fetch import FetchOptions, fetch_url_tool
from core.tools.governance import ToolGovernance
from core.tools.mcp_config import parse_mcp_servers_json
from core.tools.mcp_servers import McpServers
from core.tools.registry import ToolRegistry
from core.turn.history import HistoryStore
from core.turn.service import ConversationService, TurnConfig

log = logging.getLogger("threadwise")

EXIT_CONFIG = 2


@dataclass(frozen=True, slots=True)
class Core:
    settings: Settings
    database: Database
    llm: LLMClient
    counter: TokenCounter
    metrics: Metrics
    budgets: Budgets
    admin: AdminService
    conversations: ConversationService
    commands: Commands
    tools: ToolRegistry
    modlog: ModLog


def build_budgets(settings: Settings, database: Database) -> Budgets:
    limits = settings.limits
    prices = PriceTable.load(
        limits.prices_file,
        fallback=ModelPrice(
            usd(limits.unknown_model_input_usd),
            usd(limits.unknown_model_input_usd),
            usd(limits.unknown_model_output_usd),
        ),
        image_fallback=usd(limits.unknown_image_usd),
    )
    return Budgets(
        database,
        prices,
        defaults_from(limits),
        reservation_ttl=timedelta(seconds=limits.reservation_ttl_seconds),
        turn_cap_micros=usd(settings.threadwise.turn_max_usd) if settings.threadwise.turn_max_usd else None,
    )


def build_admin(settings: Settings, database: Database, budgets: Budgets) -> AdminService:
    return AdminService(database, budgets, admins=settings.threadwise.admins)


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The database, migrated to the newest schema."""
    async with Database.from_url(settings.service.database_url) as database:
        await migrate.upgrade(database.engine)
        yield database


@dataclass(frozen=True, slots=True)
class Safety:
    guards: list[TurnGuard]  # every turn, in order
    content: list[TurnGuard]  # what text the model wrote for a tool must also pass (redaction, moderation)
    output: OutputModeration | None
    policy: ModerationPolicy | None  # the server-wide moderation policy (None: moderation off)


def build_safety(
    settings: Settings, database: Database, llm: LLMClient, policies: ChannelPolicies, modlog: ModLog
) -> Safety:
    limits = settings.limits
    safety = settings.safety
    guards: list[TurnGuard] = [
        BanGuard(database),
        RateLimitGuard(
            rate_limit_storage(settings.service.redis_url),
            per_user=limits.user_rate_limit,
            per_channel=limits.channel_rate_limit,
        ),
        InputLimitGuard(
            InputLimits(
                max_text_chars=safety.max_message_chars,
                max_attachments=safety.max_attachments,
                max_attachment_bytes=int(safety.max_attachment_mb * 1024 * 1024),
            )
        ),
    ]
    content: list[TurnGuard] = []
    audit = ModerationAudit(database, keep_content=safety.moderation_keep_content, modlog=modlog)
    if safety.redact and safety.redact_rules:
        content.append(RedactionGuard(Redactor(safety.redact_rules), audit))
    guards.extend(content)
    guards.append(InjectionGuard(audit, block=safety.injection_action == "block"))
    output = None
    policy = None
    if safety.moderation:
        policy = ModerationPolicy.from_settings(
            flag=safety.moderation_flag_threshold,
            block=safety.moderation_block_threshold,
            overrides=safety.moderation_thresholds,
            fail_open=safety.moderation_fail_open,
        )
        moderator = Moderator(llm.sdk, policy, model=safety.moderation_model)
        moderation = ModerationGuard(moderator, audit, policies)
        guards.append(moderation)
        content.append(moderation)
        if safety.moderate_output:
            output = OutputModeration(moderator, audit, policies=policies)
    return Safety(guards, content, output, policy)


def build_tools(
    settings: Settings, images: ImageGenerator | None, content: Sequence[TurnGuard]
) -> ToolRegistry:
    """Built-in tools: on by default as THREADWISE_TOOLS says, admin-only per THREADWISE_ADMIN_ONLY_TOOLS."""
    tw = settings.threadwise

    async def screen(message: IncomingMessage) -> IncomingMessage:
        for guard in content:
            message = await guard.check(message)
        return message

    registry = ToolRegistry()
    registry.add(current_time_tool())
    registry.add(calculator_tool())
    if images is not None and tw.max_images_per_turn > 0:
        registry.add(generate_image_tool(images, screen, per_turn=tw.max_images_per_turn))
    if tw.fetch_url:
        options = FetchOptions(
            allow=tw.fetch_allow,
            max_bytes=tw.fetch_max_bytes,
            max_chars=tw.fetch_max_chars,
            timeout=tw.fetch_timeout,
            max_redirects=tw.fetch_max_redirects,
        )
        try:
            registry.add(fetch_url_tool(options))
        except ValueError as exc:
            raise SettingsError(f"THREADWISE_FETCH_ALLOW: {exc}") from None
    apply_tool_settings(registry, settings)
    return registry


def apply_tool_settings(registry: ToolRegistry, settings: Settings) -> None:
    """THREADWISE_TOOLS says which built-in tools are on by default (MCP tools are: their servers were
    configured on purpose); THREADWISE_ADMIN_ONLY_TOOLS applies to every tool, `server__*` patterns too."""
    tw = settings.threadwise
    for name, tool in list(registry.tools.items()):
        builtin = tool.source == "builtin"
        registry.tools[name] = dataclasses.replace(
            tool,
            enabled_by_default=name in tw.tools if builtin else tool.enabled_by_default,
            admin_only=any(fnmatch.fnmatchcase(name, pattern) for pattern in tw.admin_only_tools),
        )


@contextlib.asynccontextmanager
async def open_core(settings: Settings, *, model: str | None = None) -> AsyncIterator[Core]:
    counter = TokenCounter()
    tw = settings.threadwise
    await counter.preload(model or tw.model)  # logs one warning when offline without tables
    api_key = settings.openai.api_key.get_secret_value() if settings.openai.api_key else None
    llm = LLMClient.create(
        api_key=api_key,
        base_url=settings.openai.base_url,
        timeout=tw.openai_timeout,
        max_retries=tw.openai_max_retries,
    )
    try:
        async with open_database(settings) as database, contextlib.AsyncExitStack() as stack:
            metrics = Metrics()
            budgets = build_budgets(settings, database)
            admin = build_admin(settings, database, budgets)
            policies = ChannelPolicies(database)
            modlog = ModLog()
            safety = build_safety(settings, database, llm, policies, modlog)
            images = (
                ImageGenerator(llm, budgets, ImageOptions(tw.image_model, tw.image_size, tw.image_quality))
                if tw.images
                else None
            )
            registry = build_tools(settings, images, safety.content)
            if tw.mcp_servers is not None:
                configs = parse_mcp_servers_json(tw.mcp_servers.get_secret_value())
                servers = await stack.enter_async_context(
                    McpServers(configs, connect_timeout=tw.mcp_connect_timeout)
                )
                registry.extend(servers.tools())
                apply_tool_settings(registry, settings)
                log.info("MCP servers: %s", servers.status())
            redactor = Redactor(settings.safety.redact_rules) if settings.safety.redact else None
            tools = ToolExecutor(
                registry,
                database,
                policies,
                is_admin=admin.is_admin,
                redactor=redactor,
                max_calls_per_round=tw.max_tool_calls_per_round,
            )
            config = TurnConfig(
                default_model=tw.model,
                system_prompt=tw.system_prompt,
                max_output_tokens=tw.max_output_tokens,
                max_tool_rounds=tw.max_tool_rounds,
                history_max_tokens=tw.history_max_tokens,
                context_windows=dict(tw.context_windows),
                fallback_model=settings.limits.fallback_model,
                tool_round_tokens=tw.tool_round_tokens,
            )
            history = HistoryStore(database, counter, cache_size=tw.history_cache_conversations)
            service = ConversationService(
                database=database,
                llm=llm,
                counter=counter,
                config=config,
                history=history,
                guards=safety.guards,
                budget=budgets,
                tools=tools if registry.tools else None,
                metrics=metrics,
                footer=budgets.cost_footer if settings.limits.cost_footer else None,
                output_moderation=safety.output,
            )
            fallback = settings.limits.fallback_model
            models = tw.models or tuple(dict.fromkeys(m for m in (tw.model, fallback) if m))
            commands = Commands(
                conversations=service,
                budgets=budgets,
                admin=admin,
                images=images,
                retention=Retention(database),
                tools=ToolGovernance(admin, policies, registry),
                policies=policies,
                moderation=safety.policy,
                redactor=redactor,
                default_model=tw.model,
                models=models if tw.model in models else (tw.model, *models),
            )
            yield Core(
                settings, database, llm, counter, metrics, budgets, admin, service, commands, registry, modlog
            )
            await modlog.drain()
    finally:
        await llm.close()


async def run_chat(settings: Settings, conversation: str | None, model: str | None) -> int:
    async with open_core(settings, model=model) as core:
        chat = ConsoleChat(
            core.conversations, conversation=conversation or f"session-{uuid.uuid4().hex[:8]}", model=model
        )
        return await chat.run()


async def run_admin_command(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as database:
        admin = build_admin(settings, database, build_budgets(settings, database))
        # The shell starts no model client and no MCP server: it knows the built-in tools by name and takes
        # other names (MCP tools) with a note.
        registry = build_tools(settings, None, [])
        images = ("generate_image",) if settings.threadwise.images else ()
        tools = ToolGovernance(admin, ChannelPolicies(database), registry, also_known=images, open_ended=True)
        return await run_admin(
            admin, Retention(database), args, retention_days=settings.safety.retention_days, tools=tools
        )


async def run_migrate(settings: Settings, revision: str | None, downgrade: str | None) -> int:
    async with Database.from_url(settings.service.database_url) as database:
        if downgrade:
            await migrate.downgrade(database.engine, downgrade)
        else:
            await migrate.upgrade(database.engine, revision or "head")
        current = await migrate.current_revision(database.engine)
    print(f"database at revision {current or 'base'} (newest: {migrate.head_revision()})")
    return 0


def configured_platforms(settings: Settings) -> list[str]:
    platforms = []
    if settings.slack.bot_token and (settings.slack.app_token or settings.slack.signing_secret):
        platforms.append("slack")
    if settings.discord.bot_token:
        platforms.append("discord")
    return platforms


# Each adapter is an async context manager that is up (connected, routes added to the HTTP app) inside its
# block. bots/slack and bots/discord register here as they land.
AdapterFactory = Callable[[Core, HttpServer], contextlib.AbstractAsyncContextManager[None]]


def adapter_factories() -> dict[str, AdapterFactory]:
    factories: dict[str, AdapterFactory] = {}
    from bots.slack.app import open_slack  # imported here: the Slack SDKs load only when serving

    factories["slack"] = open_slack
    from bots.discord.client import open_discord  # imported here: discord.py loads only when serving

    factories["discord"] = open_discord
    return factories


@contextlib.asynccontextmanager
async def retention_task(database: Database, days: int, every: float = 3600.0) -> AsyncIterator[None]:
    """Purge data older than ``days`` now and then every ``every`` seconds while serving."""

    async def loop() -> None:
        retention = Retention(database)
        while True:
            try:
                await retention.purge(days)
            except Exception:
                log.exception("retention purge failed; retrying in %.0f s", every)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop(), name="retention")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_serve(settings: Settings) -> int:
    platforms = configured_platforms(settings)
    if not platforms:
        print(
            "threadwise serve: no chat platform is configured. Set SLACK_BOT_TOKEN with SLACK_APP_TOKEN "
            "(Socket Mode) or SLACK_SIGNING_SECRET (HTTP), and/or DISCORD_BOT_TOKEN. "
            "For a conversation in this terminal, run `threadwise chat`.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    factories = adapter_factories()
    missing = [platform for platform in platforms if platform not in factories]
    if missing:
        print(
            f"threadwise serve: credentials for {', '.join(missing)} are set, but this build has no adapter "
            "for it yet. `threadwise chat` works now.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
        http = HttpServer(host="0.0.0.0", port=settings.service.port, registry=core.metrics.registry)
        for platform in platforms:
            await stack.enter_async_context(factories[platform](core, http))
        await stack.enter_async_context(http)
        if settings.safety.retention_days is not None:
            await stack.enter_async_context(retention_task(core.database, settings.safety.retention_days))
        http.ready = True
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
    add_admin_commands(commands)
    return parser


def _run_until_signal(coro: object) -> int:
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
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except SettingsError as exc:
        print(f"threadwise: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    level = settings.threadwise.log_level if args.command != "chat" else "WARNING"
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for chatty in ("alembic", "matplotlib"):  # per-run notices, not operator news
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        if args.command == "chat":
            return _run_until_signal(run_chat(settings, args.conversation, args.model))
        if args.command == "admin":
            return _run_until_signal(run_admin_command(settings, args))
        if args.command == "migrate":
            return _run_until_signal(run_migrate(settings, args.revision, args.downgrade))
        return _run_until_signal(run_serve(settings))
    except BotError as exc:  # bad input or configuration found while starting (e.g. no API key)
        print(f"threadwise: {exc.user_message} {exc.detail or ''}".rstrip(), file=sys.stderr)
        return EXIT_CONFIG
    except (PriceFileError, SettingsError) as exc:
        print(f"threadwise: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
