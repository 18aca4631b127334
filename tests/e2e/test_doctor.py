"""`threadwise doctor` as an operator runs it before (or instead of) `serve`: the same environment, every
configured part checked against the fakes of Slack, Discord and OpenAI, one line per check, each problem
named with the variable to fix; exit code 0 only when everything configured works."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Run, openai_env
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack


@dataclass
class Fakes:
    slack: FakeSlack
    discord: FakeDiscord
    openai: FakeOpenAI

    def env(self) -> dict[str, str]:
        """Everything configured, as an operator's environment would have it."""
        env = {
            **openai_env(self.openai),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "DISCORD_BOT_TOKEN": self.discord.token,
            "DISCORD_API_URL": self.discord.api_url,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
        }
        if os.environ.get("TEST_REDIS_URL"):
            env["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
        return env


@pytest.fixture
async def fakes(fake_openai: FakeOpenAI) -> AsyncIterator[Fakes]:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        yield Fakes(slack, discord, fake_openai)


def lines(result: Run) -> dict[str, list[str]]:
    """part -> its lines as printed (state first)."""
    found: dict[str, list[str]] = {}
    for line in result.out.splitlines():
        match = re.match(r"(ok|skipped|wrong)\s+(\S+(?: \S+)?)\s{2,}(.*)", line)
        if match:
            found.setdefault(match.group(2), []).append(f"{match.group(1)}: {match.group(3)}")
    return found


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.needs_token_tables("a run with nothing wrong includes loading the model's token tables")
async def test_everything_configured_works_and_doctor_exits_0(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    assert (await run_cli("migrate")).code == 0

    result = await run_cli("doctor", env=fakes.env())

    assert result.code == 0, result.out + result.err
    found = lines(result)
    assert found["database"][0].startswith("ok: answers (sqlite+aiosqlite:///")
    assert found["migrations"][0].startswith("ok: at ")
    assert found["openai"] == [f"ok: OPENAI_API_KEY accepted by {fakes.openai.base_url}"]
    assert "ok: THREADWISE_MODEL=gpt-4o-mini exists" in found["model"]
    assert found["moderation"] == ["ok: omni-moderation-latest answers"]
    assert found["token tables"] == [f"ok: o200k_base loaded ({os.environ['TIKTOKEN_CACHE_DIR']})"]
    assert found["slack"] == ["ok: SLACK_BOT_TOKEN accepted: bot threadwise in Fake Workspace"]
    assert found["slack scopes"] == ["ok: all 13 scopes of manifest.yml granted"]
    assert found["discord"][0].startswith("ok: DISCORD_BOT_TOKEN accepted: bot Threadwise")
    assert found["discord intents"] == ["ok: Message Content intent enabled"]
    assert "Everything configured works." in result.out
    assert not any(line.startswith("wrong") for line in result.out.splitlines())


async def test_nothing_but_the_model_configured_skips_the_platforms(run_cli, fake_openai: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli("doctor", env=openai_env(fake_openai))

    found = lines(result)
    assert found["slack"] == ["skipped: SLACK_BOT_TOKEN is not set"]
    assert found["discord"] == ["skipped: DISCORD_BOT_TOKEN is not set"]
    assert found["redis"] == ["skipped: REDIS_URL is not set (rate limits are counted per process)"]
    assert found["migrations"][0].startswith("wrong: the database has no schema yet")  # never migrated
    assert "run `threadwise migrate`" in found["migrations"][0]
    assert result.code == 1


async def test_a_wrong_slack_token_is_found_with_its_fix(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    assert (await run_cli("migrate")).code == 0

    result = await run_cli("doctor", env={**fakes.env(), "SLACK_BOT_TOKEN": "xoxb-0000-wrong"})

    assert result.code == 1
    assert lines(result)["slack"] == [
        "wrong: SLACK_BOT_TOKEN: Slack refused it (invalid_auth): use the app's Bot User OAuth Token "
        "(xoxb-…) from OAuth & Permissions"
    ]
    assert "xoxb-0000-wrong" not in result.out + result.err  # a secret is never printed


async def test_an_unreachable_database_is_found_with_its_fix(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    url = f"postgresql+asyncpg://threadwise:s3cret@127.0.0.1:{closed_port()}/threadwise"

    result = await run_cli("doctor", env={**fakes.env(), "DATABASE_URL": url})

    assert result.code == 1
    found = lines(result)
    [database] = found["database"]
    assert database.startswith(f"wrong: DATABASE_URL ({url.replace('s3cret', '***')}) does not answer (")
    assert database.endswith("check the host, port, credentials and database name, and that the server runs")
    assert found["migrations"] == ["skipped: the database does not answer"]
    assert "s3cret" not in result.out + result.err


async def test_a_missing_model_is_found_with_its_fix(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    assert (await run_cli("migrate")).code == 0
    env = {**fakes.env(), "THREADWISE_MODEL": "gpt-4o-mini-typo", "THREADWISE_FALLBACK_MODEL": "gpt-4.1-mini"}

    result = await run_cli("doctor", env=env)

    assert result.code == 1
    assert lines(result)["model"] == [
        "wrong: THREADWISE_MODEL: the provider has no model 'gpt-4o-mini-typo': set THREADWISE_MODEL to a "
        "model its GET /v1/models lists (e.g. gpt-4o-mini)",
        "ok: THREADWISE_FALLBACK_MODEL=gpt-4.1-mini exists",
        "ok: THREADWISE_IMAGE_MODEL=gpt-image-1 exists",
    ]


async def test_a_wrong_openai_key_is_found_once(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    result = await run_cli("doctor", env={**fakes.env(), "OPENAI_API_KEY": "sk-wrong"})

    assert result.code == 1
    found = lines(result)
    assert found["openai"] == [
        f"wrong: OPENAI_API_KEY: {fakes.openai.base_url} refused it (401): set a valid key "
        "(https://platform.openai.com/api-keys)"
    ]
    assert "model" not in found  # not looked up with a key that does not work


async def test_missing_slack_scopes_and_discord_intent_are_named(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    fakes.slack.scopes.remove("files:write")
    fakes.slack.scopes.remove("users:read")
    fakes.discord.application_flags = 0

    result = await run_cli("doctor", env=fakes.env())

    assert result.code == 1
    found = lines(result)
    assert found["slack scopes"] == [
        "wrong: the app lacks files:write, users:read (manifest.yml asks for them): add them under OAuth & "
        "Permissions (or paste manifest.yml in App Manifest), then reinstall the app to the workspace"
    ]
    assert found["discord intents"][0].startswith("wrong: the Message Content intent is off")


async def test_settings_that_do_not_load_are_each_named(run_cli) -> None:  # type: ignore[no-untyped-def]
    env = {"THREADWISE_DISCORD_SHARD_IDS": "0,1", "PORT": "eighty"}

    result = await run_cli("doctor", env=env)

    assert result.code == 1
    [settings_lines] = lines(result).values()
    assert settings_lines[0].startswith("wrong: PORT: Input should be a valid integer")
    assert settings_lines[1].startswith(
        "wrong: THREADWISE_DISCORD_SHARD_IDS and THREADWISE_DISCORD_SHARD_COUNT: set both"
    )


async def test_each_provider_endpoint_is_checked_on_its_own_line(run_cli, fakes: Fakes) -> None:  # type: ignore[no-untyped-def]
    """THREADWISE_PROVIDERS: one endpoint that works (its models looked up there, not at the default
    endpoint), one that refuses its key, one that does not answer: each gets its own finding."""
    assert (await run_cli("migrate")).code == 0
    async with FakeOpenAI(api_key="llama-key") as llama, FakeOpenAI(api_key="claude-key") as claude:
        llama.models = ["llama3", "llama3.1"]
        gone = f"http://127.0.0.1:{closed_port()}/v1"
        providers = (
            f'{{"llama": {{"base_url": "{llama.base_url}", "api_key": "llama-key"}}, '
            f'"claude": {{"base_url": "{claude.base_url}", "api_key": "sk-stale-claude"}}, '
            f'"mistral": {{"base_url": "{gone}", "api_key": ""}}}}'
        )
        env = {
            **fakes.env(),
            "THREADWISE_MODELS": "gpt-4o-mini,llama3,llama-nope,claude-sonnet-4",
            "THREADWISE_PROVIDERS": providers,
        }

        result = await run_cli("doctor", env=env)

        assert [r.path for r in llama.requests] == ["/v1/models"]
        assert llama.requests[0].headers["authorization"] == "Bearer llama-key"  # its own key
        assert [r.headers["authorization"] for r in claude.requests] == ["Bearer sk-stale-claude"]
    assert result.code == 1
    found = lines(result)
    assert found["provider llama"] == [f"ok: api_key accepted by {llama.base_url} (2 models listed)"]
    assert found["provider claude"] == [
        f"wrong: THREADWISE_PROVIDERS['claude']: {claude.base_url} refused its api_key (401): set the key "
        "this endpoint expects"
    ]
    [mistral] = found["provider mistral"]
    assert mistral.startswith(f"wrong: THREADWISE_PROVIDERS['mistral']: cannot reach {gone} (")
    assert mistral.endswith("check its base_url and that the server runs")
    models = found["model"]
    assert f"ok: THREADWISE_MODELS=llama3 exists at {llama.base_url}" in models
    assert (
        f"wrong: THREADWISE_MODELS: {llama.base_url} (THREADWISE_PROVIDERS['llama']) lists no model "
        "'llama-nope': use a model its GET /models lists, or change the prefix"
    ) in models
    # Models routed elsewhere are not looked up at the default endpoint (which has none of them).
    assert not any("llama3'" in line or "claude-sonnet-4" in line for line in models)
    assert found["openai"] == [f"ok: OPENAI_API_KEY accepted by {fakes.openai.base_url}"]
    assert "sk-stale-claude" not in result.out + result.err and "llama-key" not in result.out + result.err
