"""`threadwise admin …` in another process while a service runs on the same SQLite file (README: "Running
several replicas"): the change reaches the service's next turn, not the end of its caches' minute. SQLite
has no notices between processes; every such change bumps a counter the turn's claim reads (the
``setting_changes`` table), and a turn that finds it moved drops the process's caches first. The service's
caches are trusted for an hour here, so only that counter can make a change show."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bots.bootstrap import Core, open_core
from core.domain.errors import NotAuthorized, QuotaExceeded
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.settings import load_settings
from tests.e2e.conftest import openai_env
from tests.fakes.openai_api import FakeOpenAI
from tests.rendered import slack
from tests.support import RecordingReplier

GENERAL = ConversationKey("slack", "T1", "C1", "1700000000.000100")
ADA = ChatUser("slack", "U0ADA", "ada")
PROMPT = "You are a helpful test assistant."
AN_HOUR = 3600.0


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Core, dict[str, str]]]:
    """The core of `threadwise serve` on the SQLite file `run_cli` uses, and the environment of both."""
    env = {
        **openai_env(fake_openai),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_SYSTEM_PROMPT": PROMPT,
        "THREADWISE_USER_RATE_LIMIT": "off",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None), cache_ttl=AN_HOUR) as core:
        assert core.database.is_sqlite
        yield core, env


async def turn(core: Core, text: str, event: str) -> RecordingReplier:
    replier = RecordingReplier()
    await core.turns.handle(IncomingMessage(GENERAL, ADA, text, event, datetime.now(UTC)), replier)
    return replier


def errors(replier: RecordingReplier) -> list[str]:
    return [type(error).__name__ for error in replier.errors]


def system_of(request: dict[str, Any]) -> str:
    content: str = request["messages"][0]["content"]
    return content


async def test_a_quota_set_by_the_shell_refuses_the_services_very_next_turn(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    async with serving(tmp_path, fake_openai, monkeypatch) as (core, env):
        assert errors(await turn(core, "hello", "e1")) == []  # caches "no limits for Ada in C1"
        asked = len(fake_openai.chat_requests())

        quota = ("admin", "quota", "set", "--scope", "channel", "--subject", "slack:T1:C1", "--period", "day")
        set_ = await run_cli(*quota, "--usd", "0", env=env)
        assert set_.code == 0, set_.err
        assert errors(await turn(core, "again", "e2")) == ["QuotaExceeded"]
        assert len(fake_openai.chat_requests()) == asked  # refused before any model call

        cleared = await run_cli(*(a if a != "set" else "clear" for a in quota), env=env)
        assert cleared.code == 0, cleared.err
        assert errors(await turn(core, "and now?", "e3")) == []
        assert len(fake_openai.chat_requests()) == asked + 1


async def test_a_persona_set_by_the_shell_applies_to_the_services_next_turn(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    async with serving(tmp_path, fake_openai, monkeypatch) as (core, env):
        await turn(core, "hello", "e1")  # caches "no persona in C1"
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT

        set_ = await run_cli(
            "admin", "prompt", "set", "--channel", "slack:T1:C1", "Talk like a pirate.", env=env
        )
        assert set_.code == 0, set_.err
        await turn(core, "hello again", "e2")
        assert (
            system_of(fake_openai.chat_requests()[-1]) == f"{PROMPT}\n\nIn this channel: Talk like a pirate."
        )


async def test_a_ban_by_the_shell_stops_the_services_admission_after_the_next_turn(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The adapters' admission (before downloads and platform calls) reads bans from the process's cache;
    the next turn's claim reads the ban itself (refused) and finds the counter moved (the cache goes)."""
    async with serving(tmp_path, fake_openai, monkeypatch) as (core, env):
        first = IncomingMessage(GENERAL, ADA, "hello", "e1", datetime.now(UTC))
        assert await core.turns.admit(first)  # caches "Ada is not banned"
        await core.turns.handle(first, RecordingReplier())
        asked = len(fake_openai.chat_requests())

        banned = await run_cli("admin", "ban", "slack:U0ADA", "--reason", "spam", env=env)
        assert banned.code == 0, banned.err
        assert errors(await turn(core, "again", "e2")) == ["NotAuthorized"]
        assert len(fake_openai.chat_requests()) == asked
        later = IncomingMessage(GENERAL, ADA, "and again", "e3", datetime.now(UTC))
        assert not await core.turns.admit(later)

        unbanned = await run_cli("admin", "unban", "slack:U0ADA", env=env)
        assert unbanned.code == 0, unbanned.err
        await turn(core, "let me in", "e4")  # served: the claim reads no ban, and the counter moved
        assert len(fake_openai.chat_requests()) == asked + 1
        assert await core.turns.admit(IncomingMessage(GENERAL, ADA, "thanks", "e5", datetime.now(UTC)))


async def test_a_quota_set_by_the_shell_refuses_the_services_next_image(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """`/ai image` is no turn (no claim reads the count of changes): a quota set from the shell applies to
    the next image all the same, not an hour (the caches' trust here; 60 s by default) later."""
    async with serving(tmp_path, fake_openai, monkeypatch) as (core, env):
        await slack(core).image(ADA, GENERAL, "a lighthouse at dusk")  # caches "no limits for Ada in C1"
        quota = ("admin", "quota", "set", "--scope", "channel", "--subject", "slack:T1:C1", "--period", "day")
        set_ = await run_cli(*quota, "--usd", "0", env=env)
        assert set_.code == 0, set_.err
        with pytest.raises(QuotaExceeded):
            await slack(core).image(ADA, GENERAL, "a lighthouse at dawn")
        assert len([r for r in fake_openai.requests if r.path == "/v1/images/generations"]) == 1


async def test_a_ban_by_the_shell_refuses_the_services_next_image_and_command(
    run_cli, fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """`/ai image` and the other commands are no turn (no claim reads the ban): they read it from the
    database, so a ban from the shell applies to the next image (which costs money) and the next command,
    not when the caches' trust runs out."""
    async with serving(tmp_path, fake_openai, monkeypatch) as (core, env):
        await slack(core).image(ADA, GENERAL, "a lighthouse at dusk")  # caches "Ada is not banned"
        await slack(core).usage(ADA, GENERAL)
        banned = await run_cli("admin", "ban", "slack:U0ADA", "--reason", "spam", env=env)
        assert banned.code == 0, banned.err
        with pytest.raises(NotAuthorized):
            await slack(core).image(ADA, GENERAL, "a lighthouse at dawn")
        with pytest.raises(NotAuthorized):
            await slack(core).usage(ADA, GENERAL)
        assert len([r for r in fake_openai.requests if r.path == "/v1/images/generations"]) == 1
