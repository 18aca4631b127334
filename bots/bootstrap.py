"""The composition root: settings -> database -> core services -> adapters, each owned by ``async with``.

Only the CLI (bots/__main__.py), tests and benchmarks import this module. Adapters never do: each gets the
narrow ``ChatServices`` and its own options, built here. What only some configurations use (the model client,
image generation, MCP servers, a platform's adapter) is imported where it is built, so `threadwise admin …`
loads no model or MCP SDK and `serve` loads only the adapters and tools it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bots.http import HttpServer
from bots.services import ChatServices
from core.admin.export import ConversationExports
from core.admin.installations import Installations
from core.admin.personas import Personas
from core.admin.retention import Retention, purging
from core.admin.service import AdminService
from core.answers.buttons import AnswerButtons
from core.answers.stops import StopChannel
from core.commands.admission import Admission
from core.commands.dispatch import Commands
from core.db import migrate
from core.db.notices import Notices
from core.db.replica_cache import SAFETY_TTL
from core.db.session import Database
from core.documents.reader import DocumentLimits, DocumentReader
from core.domain.ports import TurnGuard
from core.guards.audit import ModerationAudit
from core.guards.bans import BanGuard
from core.guards.chain import GuardChain
from core.guards.channel_policy import ChannelPolicies
from core.guards.injection import InjectionGuard
from core.guards.input_limits import InputLimitGuard, InputLimits
from core.guards.moderation import ModerationGuard, ModerationPolicy, Moderator
from core.guards.modlog import ModLog
from core.guards.output_moderation import OutputModeration
from core.guards.rate_limit import RateLimitGuard, rate_limit_storage
from core.guards.redaction import RedactionGuard
from core.guards.redactor import Redactor
from core.llm.tokens import TokenCounter
from core.metrics import Metrics
from core.money.budgets import Budgets, defaults_from
from core.money.pricing import ModelPrice, PriceTable, usd
from core.settings import Settings, SettingsError
from core.tools.approvals import Approvals
from core.tools.builtin import current_time_tool, generate_image_tool
from core.tools.calculator import calculator_tool
from core.tools.executor import ToolExecutor
from core.tools.fetch import FetchOptions, fetch_url_tool
from core.tools.governance import ToolGovernance
from core.tools.mcp_config import parse_mcp_servers_json
from core.tools.registry import ToolRegistry
from core.turn.history import HistoryStore
from core.turn.recovery import Recovery, beating, sweep_now
from core.turn.routing import ModelRouter
from core.turn.service import ConversationService, TurnConfig
from core.turn.store import new_replica_id

if TYPE_CHECKING:
    from bots.timeline import Timeline
    from core.llm.image_generation import ImageGenerator
    from core.llm.router import ProviderRouter

log = logging.getLogger("threadwise")


@dataclass(frozen=True, slots=True)
class Core:
    """Everything a running service holds, for the CLI and tests; adapters get ``chat`` only."""

    settings: Settings
    database: Database
    llm: ProviderRouter
    counter: TokenCounter
    metrics: Metrics
    budgets: Budgets
    admin: AdminService
    turns: ConversationService
    commands: Commands
    tools: ToolRegistry
    modlog: ModLog
    recovery: Recovery
    installations: Installations
    documents: DocumentReader | None = None
    approvals: Approvals | None = None
    buttons: AnswerButtons | None = None
    notices: Notices | None = None  # this replica's end of the notices between replicas

    @property
    def chat(self) -> ChatServices:
        return ChatServices(
            self.turns,
            self.commands,
            self.modlog,
            self.recovery,
            self.documents,
            self.installations,
            approvals=self.approvals,
            buttons=self.buttons,
        )


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
    return AdminService(
        database,
        budgets,
        admins=settings.threadwise.admins,
        admin_tools_for_workspace_admins=settings.threadwise.admin_tools_for_workspace_admins,
    )


def build_redactor(settings: Settings) -> Redactor | None:
    """One redactor for user text, tool output and what commands echo (None: redaction is off)."""
    safety = settings.safety
    return Redactor(safety.redact_rules) if safety.redact and safety.redact_rules else None


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """The database, migrated to the newest schema."""
    async with Database.from_url(settings.service.database_url) as database:
        await migrate.upgrade(database.engine)
        yield database


@dataclass(frozen=True, slots=True)
class Safety:
    guards: GuardChain  # every turn, in order
    content: GuardChain  # what text the model wrote for a tool must also pass (redaction, moderation)
    output: OutputModeration | None
    policy: ModerationPolicy | None  # the server-wide moderation policy (None: moderation off)
    commands: RateLimitGuard | None  # chat commands per user (same storage as the turns' windows)


def build_safety(
    settings: Settings,
    database: Database,
    llm: ProviderRouter,
    policies: ChannelPolicies,
    modlog: ModLog,
    redactor: Redactor | None,
    metrics: Metrics | None = None,
) -> Safety:
    limits = settings.limits
    safety = settings.safety
    storage = rate_limit_storage(settings.service.redis_url)
    per_command = limits.command_rate_limit
    commands = RateLimitGuard(storage, per_user=per_command) if per_command else None
    admission: list[TurnGuard] = [  # who is asking and what the event declares: run before any download
        BanGuard(database),
        RateLimitGuard(
            storage,
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
    guards = list(admission)
    content: list[TurnGuard] = []
    audit = ModerationAudit(
        database, keep_content=safety.moderation_keep_content, modlog=modlog, metrics=metrics
    )
    if redactor is not None:
        content.append(RedactionGuard(redactor, audit))
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
    return Safety(GuardChain(guards, admission=admission), GuardChain(content), output, policy, commands)


def builtin_tools(settings: Settings, images: ImageGenerator | None, content: GuardChain) -> ToolRegistry:
    """The built-in tools the settings ask for (which are on by default: ``apply_tool_policy``)."""
    tw = settings.threadwise
    registry = ToolRegistry()
    registry.add(current_time_tool())
    registry.add(calculator_tool())
    if images is not None and tw.max_images_per_turn > 0:
        registry.add(generate_image_tool(images, content.check, per_turn=tw.max_images_per_turn))
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
    return registry


def apply_tool_policy(registry: ToolRegistry, settings: Settings) -> None:
    """THREADWISE_TOOLS (built-ins on by default) and THREADWISE_ADMIN_ONLY_TOOLS, once every tool is in."""
    tw = settings.threadwise
    registry.apply_policy(builtin_on=tw.tools, admin_only=tw.admin_only_tools)


@contextlib.asynccontextmanager
async def open_tools(
    settings: Settings, images: ImageGenerator | None, content: GuardChain
) -> AsyncIterator[ToolRegistry]:
    """Built-in tools and those of the configured MCP servers (connected inside the block)."""
    tw = settings.threadwise
    registry = builtin_tools(settings, images, content)
    async with contextlib.AsyncExitStack() as stack:
        if tw.mcp_servers is not None:
            from core.tools.mcp_servers import McpServers

            configs = parse_mcp_servers_json(tw.mcp_servers.get_secret_value())
            servers = await stack.enter_async_context(
                McpServers(configs, connect_timeout=tw.mcp_connect_timeout)
            )
            registry.extend(servers.tools())
            log.info("MCP servers: %s", servers.status())
        apply_tool_policy(registry, settings)
        yield registry


def turn_config(settings: Settings) -> TurnConfig:
    tw = settings.threadwise
    return TurnConfig(
        default_model=tw.model,
        system_prompt=tw.system_prompt,
        max_output_tokens=tw.max_output_tokens,
        max_tool_rounds=tw.max_tool_rounds,
        history_max_tokens=tw.history_max_tokens,
        context_windows=dict(tw.context_windows),
        fallback_model=settings.limits.fallback_model,
        tool_round_tokens=tw.tool_round_tokens,
        turn_timeout=tw.turn_timeout,
        history_summary=tw.history_summary,
        summary_model=tw.summary_model,
        summary_max_tokens=tw.summary_max_tokens,
        summary_input_tokens=tw.summary_input_tokens,
        router=ModelRouter(tw.router[0], tw.router[1], tw.router_long_chars) if tw.router else None,
    )


def offered_models(settings: Settings) -> tuple[str, ...]:
    """What `/ai model` offers: THREADWISE_MODELS, else the default and fallback models; the default first."""
    tw = settings.threadwise
    fallback = settings.limits.fallback_model
    models = tw.models or tuple(dict.fromkeys(m for m in (tw.model, fallback) if m))
    return models if tw.model in models else (tw.model, *models)


def token_models(settings: Settings) -> tuple[str, ...]:
    """Every model a turn may count tokens for, as configured: what `/ai model` offers (with the default and
    fallback), the router's two and the summary model. A persona's model is one of THREADWISE_MODELS when
    that is set; a model outside all of these loads its encoding on its first turn."""
    tw = settings.threadwise
    named = (*offered_models(settings), *tw.router, tw.summary_model)
    return tuple(dict.fromkeys(model for model in named if model))


def build_llm(settings: Settings, metrics: Metrics | None = None) -> ProviderRouter:
    """One client per endpoint: the default (OPENAI_BASE_URL) and each of THREADWISE_PROVIDERS."""
    from core.llm.client import LLMClient
    from core.llm.router import ProviderRouter

    tw = settings.threadwise
    api_key = settings.openai.api_key.get_secret_value() if settings.openai.api_key else None
    default = LLMClient.create(
        api_key=api_key,
        base_url=settings.openai.base_url,
        timeout=tw.openai_timeout,
        max_retries=tw.openai_max_retries,
        first_token_timeout=tw.first_token_timeout,
        metrics=metrics,
    )
    providers = [
        (
            provider,
            LLMClient.create(
                api_key=provider.api_key,
                base_url=provider.base_url,
                timeout=provider.timeout if provider.timeout is not None else tw.openai_timeout,
                max_retries=(
                    provider.max_retries if provider.max_retries is not None else tw.openai_max_retries
                ),
                first_token_timeout=tw.first_token_timeout,
                metrics=metrics,
            ),
        )
        for provider in tw.provider_list()
    ]
    return ProviderRouter(default, providers)


def build_images(settings: Settings, llm: ProviderRouter, budgets: Budgets) -> ImageGenerator | None:
    tw = settings.threadwise
    if not tw.images:
        return None
    from core.llm.image_generation import ImageGenerator, ImageOptions

    return ImageGenerator(llm.default, budgets, ImageOptions(tw.image_model, tw.image_size, tw.image_quality))


@dataclass(frozen=True, slots=True)
class _Services:
    """The services both the turn and the commands use."""

    database: Database
    budgets: Budgets
    admin: AdminService
    policies: ChannelPolicies
    redactor: Redactor | None
    safety: Safety
    images: ImageGenerator | None
    personas: Personas
    approvals: Approvals


def build_approvals(
    settings: Settings, database: Database, policies: ChannelPolicies, notices: Notices
) -> Approvals:
    """Tool approval (THREADWISE_APPROVAL_TOOLS, per channel by admins, THREADWISE_APPROVAL_TIMEOUT)."""
    tw = settings.threadwise
    return Approvals(
        database,
        policies,
        patterns=tw.approval_tools,
        timeout=tw.approval_timeout,
        is_admin=lambda user: settings.is_admin(user.platform, user.user_id),
        notices=notices,
    )


def build_turns(
    settings: Settings,
    llm: ProviderRouter,
    counter: TokenCounter,
    parts: _Services,
    registry: ToolRegistry,
    owner: str,
    metrics: Metrics,
) -> ConversationService:
    tw = settings.threadwise
    database, budgets = parts.database, parts.budgets
    tools = ToolExecutor(
        registry,
        database,
        parts.policies,
        is_admin=parts.admin.may_use_admin_tools,
        redactor=parts.redactor,
        audit=ModerationAudit(database, metrics=metrics),  # tool-result redactions, audited like the user's
        max_calls_per_round=tw.max_tool_calls_per_round,
        metrics=metrics,
        personas=parts.personas,
        approvals=parts.approvals,
    )
    return ConversationService(
        database=database,
        llm=llm,
        counter=counter,
        config=turn_config(settings),
        history=HistoryStore(
            database,
            counter,
            cache_size=tw.history_cache_conversations,
            cache_bytes=int(tw.history_cache_mb * 1024 * 1024),
            metrics=metrics,
        ),
        guards=parts.safety.guards,
        budget=budgets,
        tools=tools if registry.tools else None,
        metrics=metrics,
        footer=budgets.cost_footer if settings.limits.cost_footer else None,
        output_moderation=parts.safety.output,
        owner=owner,
        personas=parts.personas,
    )


def build_documents(settings: Settings, counter: TokenCounter, turns: ConversationService) -> DocumentReader:
    """Attached documents as text, cut to THREADWISE_DOCUMENT_MAX_TOKENS of the conversation's model."""
    limits = DocumentLimits(max_tokens=settings.threadwise.document_max_tokens)
    return DocumentReader(counter, limits, default_model=settings.threadwise.model, model_of=turns.model_of)


def build_commands(
    settings: Settings, turns: ConversationService, parts: _Services, registry: ToolRegistry
) -> Commands:
    return Commands(
        conversations=turns,
        budgets=parts.budgets,
        admin=parts.admin,
        images=parts.images,
        retention=Retention(parts.database),
        tools=ToolGovernance(
            parts.admin, parts.policies, registry, approval=settings.threadwise.approval_tools
        ),
        policies=parts.policies,
        moderation=parts.safety.policy,
        redactor=parts.redactor,
        admission=Admission(parts.database, parts.safety.commands),
        bans=BanGuard(parts.database),
        exports=ConversationExports(parts.database),
        default_model=settings.threadwise.model,
        models=offered_models(settings),
        personas=parts.personas,
    )


def build_buttons(
    database: Database, turns: ConversationService, admin: AdminService, notices: Notices
) -> AnswerButtons:
    """The buttons under answers: Stop reaches the turn's replica (a notice on PostgreSQL)."""
    return AnswerButtons(
        database,
        StopChannel(database, turns.running, notices),
        is_admin=admin.is_admin,
        forget=turns.forget_history,
    )


@contextlib.asynccontextmanager
async def open_core(
    settings: Settings,
    *,
    model: str | None = None,
    cache_ttl: float = SAFETY_TTL,
    timeline: Timeline | None = None,
) -> AsyncIterator[Core]:
    """The core of a running service, on a migrated database, with its MCP servers connected. ``cache_ttl``:
    how long a cached channel policy or persona is trusted should its change notice be lost."""
    counter = TokenCounter()  # `serve` loads its tables before ready (``token_models``); else the first turn
    metrics = Metrics()  # one registry for the whole service, served at /metrics
    llm = build_llm(settings, metrics)
    mark = timeline.mark if timeline is not None else lambda _phase: None
    mark("model client")
    try:
        async with open_database(settings) as database:
            mark("database")
            budgets = build_budgets(settings, database)
            notices = Notices(database)  # one listening connection per replica (``serving`` holds it)
            policies = ChannelPolicies(database, notices=notices, ttl=cache_ttl)
            modlog, redactor = ModLog(), build_redactor(settings)
            safety = build_safety(settings, database, llm, policies, modlog, redactor, metrics)
            admin = build_admin(settings, database, budgets)
            images = build_images(settings, llm, budgets)
            personas = Personas(
                database, admin, models=offered_models(settings), notices=notices, ttl=cache_ttl
            )
            approvals = build_approvals(settings, database, policies, notices)
            parts = _Services(
                database, budgets, admin, policies, redactor, safety, images, personas, approvals
            )
            mark("services")
            async with open_tools(settings, images, safety.content) as registry:
                owner = new_replica_id()
                turns = build_turns(settings, llm, counter, parts, registry, owner, metrics)
                commands = build_commands(settings, turns, parts, registry)
                yield Core(
                    settings,
                    database,
                    llm,
                    counter,
                    metrics,
                    budgets,
                    admin,
                    turns,
                    commands,
                    registry,
                    modlog,
                    Recovery(database, owner=owner, holds=budgets),
                    Installations(database),
                    build_documents(settings, counter, turns),
                    approvals,
                    build_buttons(database, turns, admin, notices),
                    notices,
                )
                await modlog.drain()
    finally:
        await llm.close()


@dataclass(frozen=True, slots=True)
class AdminShell:
    """What `threadwise admin …` uses: no model client, no MCP server."""

    admin: AdminService
    retention: Retention
    tools: ToolGovernance
    personas: Personas


@contextlib.asynccontextmanager
async def open_admin_shell(settings: Settings) -> AsyncIterator[AdminShell]:
    async with open_database(settings) as database:
        admin = build_admin(settings, database, build_budgets(settings, database))
        # The shell knows the built-in tools by name and takes other names (MCP tools) with a note.
        registry = builtin_tools(settings, None, GuardChain())
        apply_tool_policy(registry, settings)
        images = ("generate_image",) if settings.threadwise.images else ()
        notices = Notices(database)  # sent with each change; the shell listens to none
        tools = ToolGovernance(
            admin,
            ChannelPolicies(database, notices=notices),
            registry,
            also_known=images,
            open_ended=True,
            approval=settings.threadwise.approval_tools,
        )
        personas = Personas(database, admin, models=offered_models(settings), notices=notices)
        yield AdminShell(admin, Retention(database), tools, personas)


def configured_platforms(settings: Settings) -> list[str]:
    platforms = []
    slack = settings.slack
    if (slack.bot_token or slack.oauth) and (slack.app_token or slack.signing_secret):
        platforms.append("slack")
    if settings.discord.bot_token:
        platforms.append("discord")
    return platforms


# An adapter is an async context manager, up (connected, routes added to the HTTP app) inside its block.
AdapterFactory = Callable[[ChatServices, HttpServer], contextlib.AbstractAsyncContextManager[None]]


def adapter_factory(platform: str, settings: Settings) -> AdapterFactory:
    """The adapter of ``platform`` with its options; its SDK is imported only now (serving that platform)."""
    if platform == "slack":
        from bots.slack.app import open_slack
        from bots.slack.config import SlackOptions

        slack = SlackOptions.from_settings(settings)
        return lambda services, http: open_slack(services, slack, http)
    if platform == "discord":
        from bots.discord.client import open_discord
        from bots.discord.config import DiscordOptions

        discord = DiscordOptions.from_settings(settings)
        return lambda services, http: open_discord(services, discord, http)
    raise SettingsError(f"no adapter for {platform!r}")


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, platforms: Sequence[str], *, timeline: Timeline | None = None
) -> AsyncIterator[HttpServer]:
    """`threadwise serve`: the core, every adapter of ``platforms``, /healthz, /readyz and /metrics, and the
    retention purge; ready (healthz 200) inside the block, draining (readyz 503) once it is left.
    ``timeline``: where the start-up went, logged with the "ready" line."""
    from bots.timeline import Timeline

    timeline = timeline or Timeline()
    factories = [adapter_factory(platform, settings) for platform in platforms]
    timeline.mark("adapter imports")
    async with open_core(settings, timeline=timeline) as core, contextlib.AsyncExitStack() as stack:
        timeline.mark("core")
        # The token tables of every configured model load before anything is served: tiktoken builds them
        # holding the GIL for up to a second, which in a turn would stall every other user's events. They
        # load in a worker thread while the heartbeat is written and the adapters connect (Slack's
        # auth.test is a round trip), and are waited for before the HTTP server listens.
        tables = asyncio.create_task(core.counter.preload_all(token_models(settings)), name="token tables")
        stack.callback(tables.cancel)  # a start that fails meanwhile leaves no task behind
        http = HttpServer(host="0.0.0.0", port=settings.service.port, registry=core.metrics.registry)
        # The heartbeat outlives the adapters' drain at shutdown (an exit stack unwinds in reverse).
        await stack.enter_async_context(beating(core.recovery))
        if core.notices is not None:  # Stops, policy and persona changes, approvals made on other replicas
            await stack.enter_async_context(core.notices.listening())
        http.readiness.add_database(core.database)  # adapters add their own parts when they are up
        timeline.mark("heartbeat")
        for factory in factories:
            await stack.enter_async_context(factory(core.chat, http))
        timeline.mark("adapters")
        await tables
        timeline.mark("token tables (rest)")
        await stack.enter_async_context(http)
        if settings.safety.retention_days is not None:
            await stack.enter_async_context(purging(Retention(core.database), settings.safety.retention_days))
        timeline.mark("listen")
        # Every adapter can resolve its replies now: what a stopped replica (or this one's predecessor) left.
        # SQLite serves one process, so any other owner is gone; PostgreSQL waits for stale heartbeats.
        await sweep_now(core.recovery, exclusive=core.database.is_sqlite)
        timeline.mark("recovery sweep")
        http.ready = True
        log.info(
            "ready in %.2f s",
            timeline.total(),
            extra={"fields": {"startup": timeline.phases(), "startup_mb": timeline.memory()}},
        )
        try:
            yield http
        finally:
            http.readiness.start_draining()  # /readyz answers 503 from now on, while everything stops
