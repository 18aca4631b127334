"""Configuration as an operator sets it: environment variables, a ``.env`` file, and the errors they get."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.settings import Settings, SettingsError, load_settings

FIXED_NAMES = {
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_API_URL",
    "DISCORD_BOT_TOKEN",
    "DISCORD_API_URL",
    "DISCORD_GATEWAY_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "PORT",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No variable of the developer's shell (any case: pydantic-settings matches names case-insensitively)
    and no ``.env`` of the working directory may reach the settings under test."""
    for name in list(os.environ):
        upper = name.upper()
        if upper in FIXED_NAMES or upper.startswith("THREADWISE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    return tmp_path / ".env"


def load(env_file: Path) -> Settings:
    return load_settings(env_file=env_file)


def config_error(env_file: Path) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=env_file)
    return str(caught.value)


def test_defaults_without_any_configuration(env_file: Path) -> None:
    settings = load(env_file)

    assert settings.threadwise.model == "gpt-4o-mini"
    assert settings.service.database_url == "sqlite+aiosqlite:///threadwise.db"
    assert settings.service.port == 3000
    assert settings.slack.api_url == "https://slack.com/api/"
    assert settings.discord.api_url == "https://discord.com/api/v10"
    assert settings.openai.api_key is None
    assert settings.slack.bot_token is None
    assert settings.discord.bot_token is None
    assert settings.service.redis_url is None
    assert settings.threadwise.admins == ()
    assert settings.threadwise.max_output_tokens == 1024
    assert settings.limits.user_daily_budget_usd is None
    assert settings.threadwise.log_level == "INFO"


def test_values_come_from_the_env_file(env_file: Path) -> None:
    env_file.write_text(
        "THREADWISE_MODEL=gpt-4.1-mini\n"
        "PORT=8080\n"
        "DATABASE_URL=postgresql+asyncpg://db.internal/threadwise\n"
        "OPENAI_API_KEY=sk-from-dotenv\n"
        'SLACK_BOT_TOKEN="xoxb-from-dotenv"\n'
        'THREADWISE_CONTEXT_WINDOWS={"llama3.1": 131072}\n'
        "THREADWISE_USER_DAILY_BUDGET_USD=2.50\n"
        "THREADWISE_LOG_LEVEL=debug\n",
        encoding="utf-8",
    )

    settings = load(env_file)

    assert settings.threadwise.model == "gpt-4.1-mini"
    assert settings.service.port == 8080
    assert settings.service.database_url == "postgresql+asyncpg://db.internal/threadwise"
    assert settings.openai.api_key is not None
    assert settings.openai.api_key.get_secret_value() == "sk-from-dotenv"
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-from-dotenv"
    assert settings.threadwise.context_windows == {"llama3.1": 131072}
    assert settings.limits.user_daily_budget_usd == Decimal("2.50")
    assert settings.threadwise.log_level == "DEBUG"


def test_environment_wins_over_env_file(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file.write_text(
        "THREADWISE_MODEL=gpt-4.1-mini\nPORT=8080\nOPENAI_API_KEY=sk-file\n", encoding="utf-8"
    )
    monkeypatch.setenv("THREADWISE_MODEL", "gpt-4o")
    monkeypatch.setenv("PORT", "9090")

    settings = load(env_file)

    assert settings.threadwise.model == "gpt-4o"
    assert settings.service.port == 9090
    # A variable only the file sets is still read from it.
    assert settings.openai.api_key is not None
    assert settings.openai.api_key.get_secret_value() == "sk-file"


def test_missing_env_file_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_MODEL", "gpt-4o")

    settings = load_settings(env_file=tmp_path / "does-not-exist.env")

    assert settings.threadwise.model == "gpt-4o"


def test_admins_comma_list_and_is_admin(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_ADMINS", " slack:U0ADMIN , discord:1234,, ")

    settings = load(env_file)

    assert settings.threadwise.admins == ("slack:U0ADMIN", "discord:1234")
    assert settings.is_admin("slack", "U0ADMIN")
    assert settings.is_admin("discord", "1234")
    # The platform is part of the identity: the same id on another platform is somebody else.
    assert not settings.is_admin("discord", "U0ADMIN")
    assert not settings.is_admin("slack", "1234")
    assert not settings.is_admin("slack", "U0OTHER")


def test_admins_from_env_file(env_file: Path) -> None:
    env_file.write_text("THREADWISE_ADMINS=slack:U1,discord:42\n", encoding="utf-8")

    settings = load(env_file)

    assert settings.is_admin("slack", "U1")
    assert settings.is_admin("discord", "42")


def test_admin_entry_without_platform_is_rejected_by_name(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THREADWISE_ADMINS", "slack:U1,U0ADMIN")

    message = config_error(env_file)

    assert "THREADWISE_ADMINS" in message
    assert "'U0ADMIN' is not platform:user_id" in message


def test_every_wrong_variable_is_named_in_one_error(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_MAX_OUTPUT_TOKENS", "3")
    monkeypatch.setenv("PORT", "http")

    message = config_error(env_file)

    assert "THREADWISE_MAX_OUTPUT_TOKENS" in message
    assert "PORT" in message
    # One line per problem, so an operator sees both at once.
    lines = message.splitlines()
    assert any(line.strip().startswith("THREADWISE_MAX_OUTPUT_TOKENS:") for line in lines)
    assert any(line.strip().startswith("PORT:") for line in lines)
    # The non-secret wrong value is shown to help the operator.
    assert "'http'" in message


def test_wrong_value_in_env_file_is_named(env_file: Path) -> None:
    env_file.write_text("PORT=70000\n", encoding="utf-8")

    message = config_error(env_file)

    assert "PORT" in message
    assert "65535" in message


def test_unknown_log_level_is_rejected_by_name(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_LOG_LEVEL", "verbose")

    message = config_error(env_file)

    assert "THREADWISE_LOG_LEVEL" in message


def test_malformed_context_windows_json_is_named(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_CONTEXT_WINDOWS", "llama3.1=131072")
    monkeypatch.setenv("PORT", "http")

    message = config_error(env_file)

    assert "THREADWISE_CONTEXT_WINDOWS" in message
    assert "PORT" in message


def test_slack_api_url_without_trailing_slash_is_rejected(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_API_URL", "https://slack.example/api")

    message = config_error(env_file)

    assert "SLACK_API_URL" in message
    assert "must end with '/'" in message


def test_slack_api_url_with_trailing_slash_is_accepted(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:8099/api/")

    assert load(env_file).slack.api_url == "http://127.0.0.1:8099/api/"


def test_bad_token_value_is_never_echoed(env_file: Path) -> None:
    # Environment values are always strings, so a token of the wrong type can only come through overrides
    # (the CLI's path); the masking of values of secret fields is what is under test.
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=env_file, slack={"bot_token": ["xoxb-111-222-very-secret"]})

    message = str(caught.value)
    assert "SLACK_BOT_TOKEN" in message
    assert "very-secret" not in message
    assert "xoxb" not in message


def test_secrets_are_not_echoed_when_another_variable_is_wrong(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-111-222-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-very-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("SLACK_API_URL", "https://slack.example/api")

    message = config_error(env_file)

    assert "SLACK_API_URL" in message
    assert "very-secret" not in message


def test_secrets_are_secretstr_and_hidden_in_str_and_repr(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-proj-abc123-secret",
        "SLACK_BOT_TOKEN": "xoxb-123-secret",
        "SLACK_APP_TOKEN": "xapp-1-secret",
        "SLACK_SIGNING_SECRET": "f00dfeed-secret",
        "DISCORD_BOT_TOKEN": "MTIz.discord-secret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)

    settings = load(env_file)

    values = [
        settings.openai.api_key,
        settings.slack.bot_token,
        settings.slack.app_token,
        settings.slack.signing_secret,
        settings.discord.bot_token,
    ]
    assert all(isinstance(value, SecretStr) for value in values)
    assert [value.get_secret_value() for value in values if value is not None] == list(secrets.values())
    shown = str(settings) + repr(settings) + str(settings.model_dump())
    for value in secrets.values():
        assert value not in shown
    assert "abc123" not in shown
    assert "discord-secret" not in shown


def test_blank_optional_values_are_unset(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file.write_text("REDIS_URL=\nTHREADWISE_USER_DAILY_BUDGET_USD=\n", encoding="utf-8")
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "DISCORD_BOT_TOKEN",
        "DISCORD_GATEWAY_URL",
        "THREADWISE_HISTORY_MAX_TOKENS",
        "THREADWISE_ADMINS",
    ):
        monkeypatch.setenv(name, "   ")

    settings = load(env_file)

    assert settings.openai.api_key is None
    assert settings.openai.base_url is None
    assert settings.slack.bot_token is None
    assert settings.slack.app_token is None
    assert settings.slack.signing_secret is None
    assert settings.discord.bot_token is None
    assert settings.discord.gateway_url is None
    assert settings.service.redis_url is None
    assert settings.limits.user_daily_budget_usd is None
    assert settings.threadwise.history_max_tokens is None
    assert settings.threadwise.admins == ()


def test_overrides_win_over_environment(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_MODEL", "gpt-4o")

    settings = load_settings(env_file=env_file, threadwise={"model": "o3-mini"})

    assert settings.threadwise.model == "o3-mini"


def test_settings_are_frozen(env_file: Path) -> None:
    settings = load(env_file)

    with pytest.raises(ValueError, match="frozen"):
        settings.service.port = 1  # type: ignore[misc]


def test_history_cache_is_bounded_in_megabytes(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(env_file).threadwise.history_cache_mb == 32
    monkeypatch.setenv("THREADWISE_HISTORY_CACHE_MB", "8.5")
    assert load(env_file).threadwise.history_cache_mb == 8.5
    monkeypatch.setenv("THREADWISE_HISTORY_CACHE_MB", "-1")
    with pytest.raises(SettingsError):
        load(env_file)


def test_discord_shards_of_this_process(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWISE_DISCORD_SHARD_IDS", "2, 3")
    monkeypatch.setenv("THREADWISE_DISCORD_SHARD_COUNT", "4")

    settings = load(env_file)

    assert settings.threadwise.discord_shard_ids == (2, 3)
    assert settings.threadwise.discord_shard_count == 4


@pytest.mark.parametrize(
    ("ids", "count", "expected"),
    [
        ("0,1", None, "set both"),
        (None, "2", "set both"),
        ("0,2", "2", "shard 2 does not exist"),
        ("1,1", "2", "listed twice"),
        ("one", "2", "THREADWISE_DISCORD_SHARD_IDS: Value error, must be comma-separated shard numbers"),
        ("0", "0", "THREADWISE_DISCORD_SHARD_COUNT: Input should be greater than or equal to 1"),
    ],
)
def test_discord_shards_that_cannot_work_stop_the_start_naming_the_variables(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, ids: str | None, count: str | None, expected: str
) -> None:
    if ids is not None:
        monkeypatch.setenv("THREADWISE_DISCORD_SHARD_IDS", ids)
    if count is not None:
        monkeypatch.setenv("THREADWISE_DISCORD_SHARD_COUNT", count)

    message = config_error(env_file)

    assert expected in message
    assert "THREADWISE_DISCORD_SHARD_" in message


def test_tool_approval_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings(env_file=None).threadwise
    assert (defaults.approval_tools, defaults.approval_timeout) == ((), 120.0)
    monkeypatch.setenv("THREADWISE_APPROVAL_TOOLS", " fetch_url, github__* ")
    monkeypatch.setenv("THREADWISE_APPROVAL_TIMEOUT", "45")
    chosen = load_settings(env_file=None).threadwise
    assert (chosen.approval_tools, chosen.approval_timeout) == (("fetch_url", "github__*"), 45.0)
    monkeypatch.setenv("THREADWISE_APPROVAL_TIMEOUT", "0")
    with pytest.raises(SettingsError, match="THREADWISE_APPROVAL_TIMEOUT"):
        load_settings(env_file=None)
