"""Installations and OAuth states (Slack distribution) on SQLite and PostgreSQL: one row per app and
workspace, replaced by a reinstall, updated by a rotation, deleted on uninstall; states single use, expiring,
bounded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from core.admin.installations import Installations, InstalledApp
from core.db.models import Installation, OAuthState
from core.db.session import Database

APP = InstalledApp(
    platform="slack",
    client_id="1111.2222",
    enterprise_id="",
    team_id="T0ONE",
    bot_token="xoxb-one-1",
    installer_user_id="U0ADMIN",
    bot_user_id="U0BOT",
    bot_scopes="chat:write,commands",
)


async def rows(database: Database) -> int:
    async with database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(Installation)) or 0)


async def test_a_reinstall_replaces_the_workspace_s_installation(database: Database) -> None:
    installations = Installations(database)
    await installations.save(APP)
    await installations.save(replace(APP, bot_token="xoxb-one-2", bot_scopes="chat:write"))
    await installations.save(replace(APP, team_id="T0TWO", bot_token="xoxb-two-1"))
    assert await rows(database) == 2
    found = await installations.find("slack", "1111.2222", "", "T0ONE")
    assert found is not None and found.bot_token == "xoxb-one-2" and found.bot_scopes == "chat:write"
    assert found.installer_user_id == "U0ADMIN"
    assert await installations.find("slack", "other-app", "", "T0ONE") is None  # another app's client id


async def test_a_rotated_token_keeps_the_installer_and_uninstalling_deletes(database: Database) -> None:
    installations = Installations(database)
    await installations.save(APP)
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    rotated = replace(
        APP,
        installer_user_id=None,
        bot_token="xoxe.xoxb-r",
        bot_refresh_token="xoxe-1",
        bot_token_expires_at=expires,
    )
    await installations.save(rotated, bot_only=True)
    found = await installations.find_team("slack", "1111.2222", "T0ONE")
    assert found is not None and found.bot_token == "xoxe.xoxb-r" and found.bot_token_expires_at == expires
    assert found.installer_user_id == "U0ADMIN"
    await installations.replace_token(found, "xoxe.xoxb-s", "xoxe-2", None)
    again = await installations.find("slack", "1111.2222", "", "T0ONE")
    assert again is not None and again.bot_token == "xoxe.xoxb-s" and again.bot_refresh_token == "xoxe-2"

    assert await installations.delete("slack", "1111.2222", "", "T0ONE") is True
    assert await installations.delete("slack", "1111.2222", "", "T0ONE") is False
    assert await installations.find_team("slack", "1111.2222", "T0ONE") is None


async def test_oauth_states_are_single_use_expire_and_are_bounded(database: Database) -> None:
    states = Installations(database).states(ttl=timedelta(seconds=60), limit=3)
    first = await states.issue()
    assert first is not None and len(first) <= 64
    assert await states.consume(first) is True
    assert await states.consume(first) is False  # used
    assert await states.consume("made-up") is False and await states.consume("") is False

    issued = [await states.issue() for _ in range(3)]
    assert all(issued) and await states.issue() is None  # three installs in progress at most

    past = datetime.now(UTC) - timedelta(seconds=1)
    async with database.unit_of_work() as session:  # the three pending ones expire
        await session.execute(OAuthState.__table__.update().values(expires_at=past))
    expired = issued[0]
    assert expired is not None and await states.consume(expired) is False
    fresh = await states.issue()  # issuing deletes the expired states first
    assert fresh is not None
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(OAuthState)) == 1
