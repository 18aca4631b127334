"""Configuration from the environment and ``.env`` (DESIGN.md §5).

Each group reads its own prefix so the fixed operator-facing names (``OPENAI_API_KEY``, ``SLACK_BOT_TOKEN``,
``DATABASE_URL``, ``THREADWISE_MODEL`` …) stay exactly as documented. ``load_settings`` is the only entry
point; there is no module-level settings object.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic_settings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.guards.redactor import ALL_RULES
from core.llm.provider_config import ProviderConfig, parse_providers_json
from core.tools.mcp_config import parse_mcp_servers_json


class SettingsError(Exception):
    """Configuration is invalid; the message names every offending environment variable."""


def _group_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # VAR= means "not set", so defaults apply
        extra="ignore",
        frozen=True,
    )


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class OpenAISettings(BaseSettings):
    model_config = _group_config("OPENAI_")

    api_key: SecretStr | None = None
    base_url: str | None = None

    _blank = field_validator("api_key", "base_url", mode="before")(_blank_to_none)


class SlackSettings(BaseSettings):
    model_config = _group_config("SLACK_")

    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    # Distribution (OAuth v2): installs into any workspace at GET /slack/install, without SLACK_BOT_TOKEN
    client_id: str | None = None
    client_secret: SecretStr | None = None

    _blank = field_validator(
        "bot_token", "app_token", "signing_secret", "client_id", "client_secret", mode="before"
    )(_blank_to_none)

    @property
    def oauth(self) -> bool:
        """Distribution: every workspace installs the app through OAuth and has its own bot token."""
        return self.bot_token is None and self.client_id is not None and self.client_secret is not None

    def conflicts(self) -> list[str]:
        """What is wrong with the credentials taken together (one workspace, or distribution)."""
        if self.bot_token is not None and (self.client_id or self.client_secret):
            # slack_bolt would also start its own OAuth flow from SLACK_CLIENT_ID/SECRET in the environment
            return [
                "SLACK_CLIENT_ID: set either SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (installs into many workspaces through OAuth), not both"
            ]
        if (self.client_id is None) != (self.client_secret is None):
            return ["SLACK_CLIENT_SECRET: SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set together"]
        return []

    @field_validator("api_url")
    @classmethod
    def _api_url_ends_with_slash(cls, value: str) -> str:
        if not value.endswith("/"):
            raise ValueError(
                "must end with '/' (slack_sdk joins method names onto it), e.g. https://slack.com/api/"
            )
        return value


class DiscordSettings(BaseSettings):
    model_config = _group_config("DISCORD_")

    bot_token: SecretStr | None = None
    api_url: str = "https://discord.com/api/v10"
    gateway_url: str | None = None

    _blank = field_validator("bot_token", "gateway_url", mode="before")(_blank_to_none)


class ServiceSettings(BaseSettings):
    model_config = _group_config("")

    database_url: str = "sqlite+aiosqlite:///threadwise.db"
    redis_url: str | None = None
    port: int = Field(default=3000, ge=0, le=65535)

    _blank = field_validator("redis_url", mode="before")(_blank_to_none)


class ThreadwiseSettings(BaseSettings):
    model_config = _group_config("THREADWISE_")

    model: str = "gpt-4o-mini"
    admins: Annotated[tuple[str, ...], NoDecode] = ()
    system_prompt: str = (
        "You are Threadwise, a helpful assistant in a team chat. Answer concisely and use Markdown sparingly."
    )
    max_output_tokens: int = Field(default=1024, ge=16)
    history_max_tokens: int | None = Field(default=None, ge=256)
    context_windows: dict[str, int] = Field(default_factory=dict)
    history_summary: bool = True  # summarise the turns that fall out of the window (false: plain trimming)
    summary_model: str | None = None  # the model that writes the summary (default: the conversation's)
    summary_max_tokens: int = Field(default=512, ge=32, le=4096)
    summary_input_tokens: int = Field(default=4000, ge=256)  # dropped text one summary call reads
    openai_timeout: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    first_token_timeout: float = Field(default=20.0, gt=0)  # request -> first delta; also stalls
    turn_timeout: float = Field(default=120.0, gt=0)  # a whole turn: guards, every model call, tools
    max_tool_rounds: int = Field(default=4, ge=1, le=20)
    history_cache_conversations: int = Field(default=256, ge=0)
    history_cache_mb: float = Field(default=32, ge=0)  # bytes of cached history windows (no image data)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] | None = None  # None: text on a terminal, else JSON (serve)
    drain_seconds: float = Field(default=30.0, ge=0)  # at SIGTERM: how long running turns get to finish
    models: Annotated[tuple[str, ...], NoDecode] = ()  # what `/ai model` may choose (default: only `model`)
    images: bool = True
    image_model: str = "gpt-image-1"
    image_size: str = "1024x1024"
    image_quality: str = "medium"
    tools: Annotated[tuple[str, ...], NoDecode] = ("current_time", "calculator", "generate_image")
    admin_only_tools: Annotated[tuple[str, ...], NoDecode] = ()
    admin_tools_for_workspace_admins: bool = False  # admin-only tools: operators only unless true
    tool_round_tokens: int = Field(default=4000, ge=100)
    document_max_tokens: int = Field(default=8_000, ge=100, le=100_000)  # text one attached document adds
    max_tool_calls_per_round: int = Field(default=8, ge=1, le=64)
    # tools that run only once the asker (or an admin) approves: fnmatch patterns, MCP tools included
    approval_tools: Annotated[tuple[str, ...], NoDecode] = ()
    approval_timeout: float = Field(default=120.0, gt=0, le=600)  # seconds an approval is waited for
    turn_max_usd: Decimal | None = Field(default=None, gt=0)
    max_images_per_turn: int = Field(default=2, ge=0, le=10)
    fetch_url: bool = False
    fetch_allow: Annotated[tuple[str, ...], NoDecode] = ()
    fetch_max_bytes: int = Field(default=1_000_000, ge=1)
    fetch_max_chars: int = Field(default=20_000, ge=1)
    fetch_timeout: float = Field(default=10.0, gt=0)
    fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    mcp_servers: Annotated[SecretStr | None, NoDecode] = None  # JSON; may hold bearer tokens
    providers: Annotated[SecretStr | None, NoDecode] = None  # JSON; model prefix -> endpoint and key
    router: Annotated[tuple[str, ...], NoDecode] = ()  # "<cheap>,<strong>": automatic model choice
    router_long_chars: int = Field(default=600, ge=1)  # longer messages go to the strong model
    mcp_connect_timeout: float = Field(default=20.0, gt=0)
    discord_guilds: Annotated[tuple[int, ...], NoDecode] = ()  # sync commands to these guilds (instant)
    discord_sharded: bool = False
    # this process's gateway shards (e.g. 0,1) of THREADWISE_DISCORD_SHARD_COUNT in all
    discord_shard_ids: Annotated[tuple[int, ...], NoDecode] = ()
    discord_shard_count: int | None = Field(default=None, ge=1)
    discord_edit_interval: float = Field(default=1.0, ge=0.2, le=10)
    discord_ready_timeout: float = Field(default=60.0, gt=0)
    slack_modlog_channel: str | None = None  # channel id that hears of flagged and blocked messages
    slack_redirect_uri: str | None = None  # OAuth: the redirect URL, when the app lists more than one
    slack_native_streaming: bool = True  # chat.startStream where the workspace allows it
    discord_modlog_channel: int | None = None

    _no_modlog = field_validator(
        "slack_modlog_channel", "discord_modlog_channel", "slack_redirect_uri", mode="before"
    )(_blank_to_none)

    @field_validator("discord_guilds", mode="before")
    @classmethod
    def _guild_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _shard_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not all(part.isdigit() for part in parts):
                raise ValueError("must be comma-separated shard numbers, e.g. 0,1")
            return tuple(int(part) for part in parts)
        return value

    _no_shard_count = field_validator("discord_shard_count", mode="before")(_blank_to_none)

    @model_validator(mode="after")
    def _shards_split(self) -> ThreadwiseSettings:
        ids, count = self.discord_shard_ids, self.discord_shard_count
        if bool(ids) != (count is not None):
            raise ValueError(
                "THREADWISE_DISCORD_SHARD_IDS and THREADWISE_DISCORD_SHARD_COUNT: set both (this process's "
                "shards, e.g. 0,1, of how many in all, e.g. 4) or neither"
            )
        if count is not None:
            wrong = [shard for shard in ids if shard >= count]
            if wrong:
                raise ValueError(
                    f"THREADWISE_DISCORD_SHARD_IDS: shard {wrong[0]} does not exist: shards are numbered "
                    f"from 0 to THREADWISE_DISCORD_SHARD_COUNT - 1 ({count - 1})"
                )
            if len(set(ids)) != len(ids):
                raise ValueError("THREADWISE_DISCORD_SHARD_IDS: a shard is listed twice")
        return self

    @field_validator("providers", mode="after")
    @classmethod
    def _valid_providers(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            parse_providers_json(value.get_secret_value())  # ValueError names the entry, never a key
        return value

    def provider_list(self) -> tuple[ProviderConfig, ...]:
        """THREADWISE_PROVIDERS, parsed (checked when the settings loaded)."""
        text = self.providers.get_secret_value().strip() if self.providers is not None else ""
        return parse_providers_json(text) if text else ()

    @field_validator("mcp_servers", mode="after")
    @classmethod
    def _valid_mcp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_mcp_servers_json(value.get_secret_value())  # ValueError names the entry, never a token
        return value

    _blank = field_validator("history_max_tokens", "summary_model", mode="before")(_blank_to_none)

    _no_cap = field_validator("turn_max_usd", mode="before")(_blank_to_none)

    @field_validator("router", mode="after")
    @classmethod
    def _two_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value and len(value) != 2:
            raise ValueError("name two models, the cheap one then the strong one, e.g. gpt-4o-mini,gpt-4.1")
        return value

    @field_validator(
        "models", "tools", "admin_only_tools", "fetch_allow", "router", "approval_tools", mode="before"
    )
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() in ("none", "off"):
                return ()
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for entry in value:
            platform, _, user_id = str(entry).partition(":")
            if not platform or not user_id:
                raise ValueError(f"{entry!r} is not platform:user_id (e.g. slack:U0ADMIN,discord:1234)")
        return tuple(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


_BUDGET_FIELDS = tuple(
    f"{scope}_{period}_budget_{unit}"
    for scope in ("user", "channel", "workspace", "global")
    for period in ("daily", "monthly")
    for unit in ("usd", "tokens")
)


class LimitSettings(BaseSettings):
    """Default budgets (``THREADWISE_<SCOPE>_<DAILY|MONTHLY>_BUDGET_<USD|TOKENS>``), prices and rate limits.

    Unset means no limit. Admins override any of them per subject with ``threadwise admin quota set``.
    """

    model_config = _group_config("THREADWISE_")

    user_daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    user_daily_budget_tokens: int | None = Field(default=None, ge=0)
    user_monthly_budget_usd: Decimal | None = Field(default=None, ge=0)
    user_monthly_budget_tokens: int | None = Field(default=None, ge=0)
    channel_daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    channel_daily_budget_tokens: int | None = Field(default=None, ge=0)
    channel_monthly_budget_usd: Decimal | None = Field(default=None, ge=0)
    channel_monthly_budget_tokens: int | None = Field(default=None, ge=0)
    workspace_daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    workspace_daily_budget_tokens: int | None = Field(default=None, ge=0)
    workspace_monthly_budget_usd: Decimal | None = Field(default=None, ge=0)
    workspace_monthly_budget_tokens: int | None = Field(default=None, ge=0)
    global_daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    global_daily_budget_tokens: int | None = Field(default=None, ge=0)
    global_monthly_budget_usd: Decimal | None = Field(default=None, ge=0)
    global_monthly_budget_tokens: int | None = Field(default=None, ge=0)

    prices_file: Path | None = None
    unknown_model_input_usd: Decimal = Field(default=Decimal("10.00"), ge=0)
    unknown_model_output_usd: Decimal = Field(default=Decimal("40.00"), ge=0)
    unknown_image_usd: Decimal = Field(default=Decimal("0.25"), ge=0)
    fallback_model: str | None = None
    reservation_ttl_seconds: int = Field(default=900, ge=30)
    cost_footer: bool = False
    user_rate_limit: str | None = "20/minute"
    channel_rate_limit: str | None = None
    command_rate_limit: str | None = "20/minute"  # chat commands per user, a window of their own

    _blank = field_validator(*_BUDGET_FIELDS, "prices_file", "fallback_model", mode="before")(_blank_to_none)

    @field_validator("user_rate_limit", "channel_rate_limit", "command_rate_limit", mode="before")
    @classmethod
    def _rate_limit(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        if isinstance(value, str):
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError:
                raise ValueError("must be like '20/minute' or '5/second;100/hour' (or 'off')") from None
        return value

    @field_validator("prices_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


class SafetySettings(BaseSettings):
    """Moderation, redaction and input limits (``THREADWISE_MODERATION_*``, ``THREADWISE_REDACT`` …)."""

    model_config = _group_config("THREADWISE_")

    moderation: bool = True
    moderation_model: str = "omni-moderation-latest"
    moderation_fail_open: bool = True
    moderation_flag_threshold: float = Field(default=0.4, ge=0, le=1)
    moderation_block_threshold: float = Field(default=0.8, ge=0, le=1)
    moderation_thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    moderate_output: bool = True
    moderation_keep_content: bool = False
    max_message_chars: int = Field(default=20_000, ge=1)
    max_attachments: int = Field(default=4, ge=0)
    max_attachment_mb: float = Field(default=20, gt=0)
    redact: bool = True
    redact_rules: Annotated[tuple[str, ...], NoDecode] = ALL_RULES
    injection_action: Literal["flag", "block"] = "flag"
    retention_days: int | None = Field(default=None, ge=1)

    @field_validator("redact_rules", mode="before")
    @classmethod
    def _known_rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [rule for rule in value if rule not in ALL_RULES]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(ALL_RULES)}")
        return tuple(value)

    _no_retention = field_validator("retention_days", mode="before")(_blank_to_none)


class Settings(BaseModel):
    """Everything the service is configured with, grouped by what it configures."""

    model_config = ConfigDict(frozen=True)

    openai: OpenAISettings
    slack: SlackSettings
    discord: DiscordSettings
    service: ServiceSettings
    threadwise: ThreadwiseSettings
    limits: LimitSettings
    safety: SafetySettings

    def is_admin(self, platform: str, user_id: str) -> bool:
        return f"{platform}:{user_id}" in self.threadwise.admins


_GROUPS: dict[str, type[BaseSettings]] = {
    "openai": OpenAISettings,
    "slack": SlackSettings,
    "discord": DiscordSettings,
    "service": ServiceSettings,
    "threadwise": ThreadwiseSettings,
    "limits": LimitSettings,
    "safety": SafetySettings,
}


def load_settings(env_file: str | Path | None = ".env", **overrides: dict[str, Any]) -> Settings:
    """Read every group from the environment (and ``env_file`` when it exists).

    ``overrides`` maps a group name to field values that win over the environment (used by the CLI's flags
    and by tests). Raises ``SettingsError`` naming each wrong variable.
    """
    groups: dict[str, BaseSettings] = {}
    problems: list[str] = []
    for name, cls in _GROUPS.items():
        try:
            groups[name] = cls(_env_file=env_file, **overrides.get(name, {}))
        except ValidationError as exc:
            prefix = str(cls.model_config.get("env_prefix", ""))
            for err in exc.errors():
                if not err["loc"]:  # a rule across fields: its message names the variables
                    problems.append(str(err["msg"]).removeprefix("Value error, "))
                    continue
                field = str(err["loc"][0])
                shown = err.get("input")
                declared = cls.model_fields.get(field)
                secret = any(word in field for word in ("key", "token", "secret")) or (
                    declared is not None and "SecretStr" in str(declared.annotation)
                )
                plain = not (secret or isinstance(shown, dict) or shown is None)
                got = f" (got {str(shown)[:60]!r})" if plain else ""
                problems.append(f"{(prefix + field).upper()}: {err['msg']}{got}")
        except pydantic_settings.SettingsError as exc:  # a complex value (JSON) that does not parse
            prefix = str(cls.model_config.get("env_prefix", ""))
            found = re.search(r'field "(\w+)"', str(exc))
            name = (prefix + found.group(1)).upper() if found else f"a {prefix or 'service'} setting"
            problems.append(f'{name}: must be valid JSON, e.g. {{"llama3.1": 131072}}')
    slack = groups.get("slack")
    if isinstance(slack, SlackSettings):
        problems.extend(slack.conflicts())
    if problems:
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
    return Settings(**groups)
