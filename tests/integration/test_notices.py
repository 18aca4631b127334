"""Notices (core/db/notices.py) in one process, SQLite and PostgreSQL alike: a notice is heard once its
transaction commits and never when it rolls back; a malformed one is logged and ignored; one too large for
the channel is refused when sent; a change of a setting processes cache is counted in its transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bots.bootstrap import AdminShell, open_admin_shell
from core.db.models import SettingChanges
from core.db.notices import MAX_PAYLOAD, Notice, Notices
from core.db.session import Database
from core.domain.types import ChatUser
from core.guards.channel_policy import ChannelPolicies
from core.settings import load_settings


async def test_a_notice_is_heard_when_its_transaction_commits_and_not_when_it_rolls_back(
    database: Database,
) -> None:
    notices = Notices(database)
    heard: list[Notice] = []
    notices.subscribe("policy", heard.append)
    async with database.unit_of_work() as session:
        await notices.publish("policy", {"channel": ["slack", "T1", "C1"]}, session)
        assert heard == []  # not before the change is there to read
    assert heard == [{"channel": ["slack", "T1", "C1"]}]
    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as session:
            await notices.publish("policy", {"channel": ["slack", "T1", "C2"]}, session)
            raise RuntimeError("the change failed")
    assert heard == [{"channel": ["slack", "T1", "C1"]}]


async def test_malformed_notices_are_ignored_and_oversized_ones_refused(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    notices = Notices(database)
    stops: list[int] = []

    def stop(notice: Notice) -> None:
        claim = notice["claim"]
        if not isinstance(claim, int):
            raise TypeError("claim")
        stops.append(claim)

    notices.subscribe("stop", stop)
    for payload in ("", "[1]", '{"claim": 1}', '{"topic": "stop"}', '{"topic": "stop", "claim": "x"}'):
        notices.deliver(payload)
    notices.deliver('{"topic": "stop", "claim": 1, "pad": "' + "x" * MAX_PAYLOAD + '"}')
    notices.deliver('{"topic": "news", "claim": 1}')  # a newer replica's topic: not this one's business
    notices.deliver('{"topic": "stop", "claim": 7}')
    assert stops == [7]
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 6
    with pytest.raises(ValueError, match="over"):
        await notices.publish("stop", {"claim": 1, "by": "x" * MAX_PAYLOAD})
    with pytest.raises(ValueError, match="unknown"):
        notices.subscribe("news", stop)


async def count_of_changes(database: Database) -> int:
    async with database.reading() as connection:
        return int((await connection.execute(select(SettingChanges.changes))).scalar_one())


async def test_every_change_of_a_cached_setting_is_counted_in_its_transaction(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `threadwise admin` and `/ai-admin` change and processes cache (budget overrides, bans, channel
    policies, personas) bumps the count every turn's claim reads: a process that cannot hear the notice
    (another process, on SQLite) learns of the change at its next turn."""
    monkeypatch.setenv("DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    operator = ChatUser("cli", "root", "root", is_admin=True)
    channel = ("slack", "T1", "C1")
    changes: tuple[Callable[[AdminShell], Awaitable[Any]], ...] = (
        lambda shell: shell.admin.quota_set(
            operator,
            scope="channel",
            subject="slack:T1:C1",
            period="day",
            usd_limit=Decimal("1"),
            token_limit=None,
        ),
        lambda shell: shell.admin.quota_clear(operator, scope="channel", subject="slack:T1:C1", period="day"),
        lambda shell: shell.admin.ban(operator, "slack:U0ADA", reason="spam", until=None),
        lambda shell: shell.admin.unban(operator, "slack:U0ADA"),
        lambda shell: shell.tools.set(operator, channel, ["calculator"]),
        lambda shell: shell.tools.approval(operator, channel, ["calculator"]),
        lambda _shell: ChannelPolicies(database, notices=Notices(database)).set_moderation(
            channel, {"harassment": 0.5}, by="slack:U0BOSS"
        ),
        lambda shell: shell.personas.set(operator, channel, "Be brief."),
        lambda shell: shell.personas.clear(operator, channel),
    )
    async with open_admin_shell(load_settings(env_file=None)) as shell:
        for done, change in enumerate(changes):
            assert await count_of_changes(database) == done
            await change(shell)
        assert await count_of_changes(database) == len(changes)

    notices = Notices(database)
    await notices.publish("stop", {"claim": 1, "by": "x"})  # no setting: not counted
    await notices.publish("approval", {"id": 1})
    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as session:
            await notices.publish("ban", {"user": ["slack", "U0BOB"]}, session)
            raise RuntimeError("the change failed")
    assert await count_of_changes(database) == len(changes)
