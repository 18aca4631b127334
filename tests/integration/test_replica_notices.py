"""Notices between replicas (core/db/notices.py): a channel policy or persona changed through one replica
applies to the very next turn on another, a listening connection that broke drops the caches when it comes
back, a malformed notice is ignored. Each replica is a whole core (`open_core`) on the same database, with
its caches trusted for an hour, so only a notice (or the count of setting changes a turn's claim reads) can
make a change show. SQLite serves one process: there
the one core is both replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bots.bootstrap import Core, open_admin_shell, open_core
from core.db.models import PersonaRow
from core.db.notices import CHANNEL, Notices
from core.db.session import Database
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.guards.channel_policy import ChannelPolicies
from core.settings import load_settings
from tests.fakes.openai_api import FakeOpenAI
from tests.rendered import slack
from tests.support import RecordingReplier

GENERAL = ConversationKey("slack", "T1", "C1", "1700000000.000100")
ADA = ChatUser("slack", "U0ADA", "ada")
ADMIN = ChatUser("slack", "U0BOSS", "boss", is_admin=True)  # a workspace admin of T1
OPERATOR = ChatUser("cli", "root", "root", is_admin=True)  # `threadwise admin`
PROMPT = "You are a helpful test assistant."
AN_HOUR = 3600.0  # longer than any test: a cached entry changes only through a notice


@contextlib.asynccontextmanager
async def replica(
    url: str,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    *,
    check_every: float = 30.0,
    listen: bool = True,
) -> AsyncIterator[Core]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": url,
        "THREADWISE_SYSTEM_PROMPT": PROMPT,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None), cache_ttl=AN_HOUR) as core:
        assert core.notices is not None
        if not listen:
            yield core
            return
        async with core.notices.listening(check_every=check_every):
            yield core


@contextlib.asynccontextmanager
async def two_replicas(
    url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Core, Core]]:
    async with replica(url, fake_openai, monkeypatch) as first:
        if first.database.is_sqlite:
            yield first, first
            return
        async with replica(url, fake_openai, monkeypatch) as second:
            yield first, second


async def turn(core: Core, text_: str, event: str) -> None:
    message = IncomingMessage(GENERAL, ADA, text_, event, datetime.now(UTC))
    await core.turns.handle(message, RecordingReplier())


async def heard(core: Core, count: int) -> None:
    """Until ``core`` heard ``count`` notices from its listening connection (PostgreSQL; SQLite is local)."""
    assert core.notices is not None
    if not core.notices.is_shared:
        return
    for _ in range(1000):
        if core.notices.heard >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"heard {core.notices.heard} notices, not {count}")


def system_of(request: dict[str, Any]) -> str:
    content: str = request["messages"][0]["content"]
    return content


def tools_of(request: dict[str, Any]) -> set[str]:
    return {tool["function"]["name"] for tool in request.get("tools", [])}


async def test_a_persona_set_through_one_replica_applies_to_the_next_turn_on_the_other(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_replicas(database_url, fake_openai, monkeypatch) as (first, second):
        await turn(second, "hello", "e1")  # the second replica caches "no persona here"
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT

        said = (await slack(first).admin(ADMIN, GENERAL, "prompt", "set here Talk like a pirate.")).text
        assert "Persona of channel slack:T1:C1 set" in said
        await heard(second, 1)
        await turn(second, "hello again", "e2")
        pirate = f"{PROMPT}\n\nIn this channel: Talk like a pirate."
        assert system_of(fake_openai.chat_requests()[-1]) == pirate

        await slack(first).admin(ADMIN, GENERAL, "prompt", "clear here")
        await heard(second, 2)
        await turn(second, "and now?", "e3")
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT


async def test_tools_switched_off_in_a_channel_through_one_replica_are_off_on_the_other(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_replicas(database_url, fake_openai, monkeypatch) as (first, second):
        await turn(second, "hello", "e1")
        assert {"calculator", "current_time"} <= tools_of(fake_openai.chat_requests()[-1])

        said = (await slack(first).admin(ADMIN, GENERAL, "tools", "set here none")).text
        assert "C1" in said
        await heard(second, 1)
        await turn(second, "what is 2+2?", "e2")
        assert tools_of(fake_openai.chat_requests()[-1]) == set()


async def test_a_listening_connection_that_broke_drops_the_caches_when_it_is_back(
    database: Database, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change whose notice this replica could not hear (written without one here) shows once the
    replica listens again: it cannot know what it missed, so it reads everything afresh."""
    if database.is_sqlite:
        pytest.skip("SQLite serves one process: nothing listens")
    url = database.engine.url.render_as_string(hide_password=False)
    async with replica(url, fake_openai, monkeypatch, check_every=0.05) as core:
        assert core.notices is not None and core.buttons is not None
        async with core.buttons.listening():  # Stops ride the same connection: no second one
            assert core.notices.connections == 1
        await turn(core, "hello", "e1")  # caches "no persona" and the default tools of C1
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT
        async with database.unit_of_work() as session:  # changes whose notices are lost
            session.add(
                PersonaRow(
                    platform="slack",
                    workspace_id="T1",
                    channel_id="C1",
                    prompt="Be brief.",
                    set_by="slack:U0BOSS",
                    updated_at=datetime.now(UTC),
                )
            )
        await ChannelPolicies(database).set_tools(("slack", "T1", "C1"), ["calculator"], by="slack:U0BOSS")
        await turn(core, "still cached", "e2")
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT  # an hour's TTL: nothing told it

        async with database.unit_of_work() as session:  # e.g. the database restarted under it
            await session.execute(select(func.pg_terminate_backend(core.notices.listener_pid)))
        for _ in range(400):  # listening again on a new connection
            if core.notices.connections >= 2:
                break
            await asyncio.sleep(0.05)
        assert core.notices.connections == 2

        await turn(core, "and now?", "e3")
        request = fake_openai.chat_requests()[-1]
        assert system_of(request) == f"{PROMPT}\n\nIn this channel: Be brief."
        assert tools_of(request) == {"calculator"}


async def test_a_malformed_notice_is_ignored_and_the_next_one_is_heard(
    database: Database, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite serves one process: nothing listens")
    url = database.engine.url.render_as_string(hide_password=False)
    async with replica(url, fake_openai, monkeypatch) as core:
        await turn(core, "hello", "e1")
        async with database.unit_of_work() as session:  # anything anyone may NOTIFY on the channel
            for payload in ('{"topic": "persona", "channel": 7}', "not json", '{"topic": "from-the-future"}'):
                await session.execute(select(func.pg_notify(CHANNEL, payload)))
        await heard(core, 3)
        other = Notices(database)  # another replica's change, sent as the real thing
        async with database.unit_of_work() as session:
            session.add(
                PersonaRow(
                    platform="slack",
                    workspace_id="T1",
                    channel_id="C1",
                    prompt="Be kind.",
                    set_by="slack:U0BOSS",
                    updated_at=datetime.now(UTC),
                )
            )
            await other.publish("persona", {"channel": ["slack", "T1", "C1"]}, session)
        await heard(core, 4)
        await turn(core, "and now?", "e2")
        assert system_of(fake_openai.chat_requests()[-1]) == f"{PROMPT}\n\nIn this channel: Be kind."


async def test_a_ban_through_one_replica_stops_the_others_admission_at_once_and_an_unban_lifts_it(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapters' admission (before any download or platform call) reads bans from a per-replica cache:
    a ban or unban made anywhere reaches it by notice, not after the cache's minute."""
    async with two_replicas(database_url, fake_openai, monkeypatch) as (first, second):
        message = IncomingMessage(GENERAL, ADA, "hello", "e1", datetime.now(UTC))
        assert await second.turns.admit(message)  # the second replica caches "Ada is not banned"

        await first.admin.ban(OPERATOR, "slack:U0ADA", reason="spam", until=None)
        await heard(second, 1)
        assert not await second.turns.admit(message)
        assert not await first.turns.admit(message)

        assert await first.admin.unban(OPERATOR, "slack:U0ADA")
        await heard(second, 2)
        assert await second.turns.admit(message)


async def test_a_quota_set_through_one_replica_refuses_the_next_turn_on_the_other_and_clearing_it_frees_it(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without default limits a turn learns that it has none from a per-replica cache: an override set or
    cleared anywhere reaches it by notice."""
    async with two_replicas(database_url, fake_openai, monkeypatch) as (first, second):
        await turn(second, "hello", "e1")  # the second replica caches "no limits for Ada here"
        asked = len(fake_openai.chat_requests())

        said = (await slack(first).admin(ADMIN, GENERAL, "quota", "set channel here day $0")).text
        assert said.startswith("Set:")
        await heard(second, 1)
        replier = RecordingReplier()
        await second.turns.handle(IncomingMessage(GENERAL, ADA, "again", "e2", datetime.now(UTC)), replier)
        assert [type(error).__name__ for error in replier.errors] == ["QuotaExceeded"]
        assert len(fake_openai.chat_requests()) == asked  # refused before any model call

        await slack(first).admin(ADMIN, GENERAL, "quota", "clear channel here day")
        await heard(second, 2)
        await turn(second, "and now?", "e3")
        assert len(fake_openai.chat_requests()) == asked + 1


async def test_a_change_whose_notice_a_replica_does_not_hear_applies_to_its_next_turn(
    database_url: str, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`threadwise admin` is another process with its own connections: on SQLite no notice leaves it, and
    on PostgreSQL a replica may miss one (this one does not listen at all). The count of setting changes the
    change bumped, which every turn's claim reads, still brings it to the replica's very next turn."""
    async with replica(database_url, fake_openai, monkeypatch, listen=False) as core:
        await turn(core, "hello", "e1")  # caches "no persona", the default tools, "no limits"
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT

        async with open_admin_shell(load_settings(env_file=None)) as shell:  # its own Database: the CLI
            await shell.personas.set(OPERATOR, ("slack", "T1", "C1"), "Be brief.")
            await shell.tools.set(OPERATOR, ("slack", "T1", "C1"), ["calculator"])
        await turn(core, "and now?", "e2")
        request = fake_openai.chat_requests()[-1]
        assert system_of(request) == f"{PROMPT}\n\nIn this channel: Be brief."
        assert tools_of(request) == {"calculator"}
        asked = len(fake_openai.chat_requests())

        async with open_admin_shell(load_settings(env_file=None)) as shell:
            await shell.admin.quota_set(
                OPERATOR,
                scope="channel",
                subject="slack:T1:C1",
                period="day",
                usd_limit=Decimal(0),
                token_limit=None,
            )
        replier = RecordingReplier()
        await core.turns.handle(IncomingMessage(GENERAL, ADA, "again", "e3", datetime.now(UTC)), replier)
        assert [type(error).__name__ for error in replier.errors] == ["QuotaExceeded"]
        assert len(fake_openai.chat_requests()) == asked  # refused before any model call
