"""Where the app is installed (distribution through OAuth): one bot token per app and workspace, kept in the
database every replica shares, and the single-use OAuth states of installs in progress.

Platform-neutral values: the Slack adapter (bots/slack/installations.py) maps them to slack_sdk's models.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from core.db.base import utcnow
from core.db.models import Installation, OAuthState
from core.db.repositories import insert_for
from core.db.session import Database

STATE_LIMIT = 10_000  # installs in progress at once; /slack/install is public, so its rows are bounded


@dataclass(frozen=True, slots=True)
class InstalledApp:
    """One installation. ``enterprise_id``/``team_id`` are ``""`` where the platform names none."""

    platform: str
    client_id: str
    enterprise_id: str
    team_id: str
    bot_token: str
    is_enterprise_install: bool = False
    app_id: str | None = None
    team_name: str | None = None
    enterprise_name: str | None = None
    enterprise_url: str | None = None
    installer_user_id: str | None = None
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str = ""
    bot_refresh_token: str | None = None
    bot_token_expires_at: datetime | None = None
    token_type: str | None = None
    installed_at: datetime | None = None  # None: now


_KEY = ("platform", "client_id", "enterprise_id", "team_id")
_BOT = ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at")


class Installations:
    """Installations of one platform's app; every call is its own short transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def states(self, *, ttl: timedelta, limit: int = STATE_LIMIT) -> OAuthStates:
        """The OAuth states of installs in progress, in the same database."""
        return OAuthStates(self._database, ttl=ttl, limit=limit)

    async def save(self, app: InstalledApp, *, bot_only: bool = False) -> None:
        """Insert or replace the installation of ``app``'s workspace (``bot_only``: a rotated bot token,
        keeping what the installation said about its installer)."""
        values = {f.name: getattr(app, f.name) for f in fields(app)}
        now = utcnow()
        values["installed_at"] = app.installed_at or now
        values["updated_at"] = now
        changed = _BOT if bot_only else tuple(name for name in values if name not in _KEY)
        async with self._database.unit_of_work() as session:
            statement = insert_for(session, Installation).values(**values)
            statement = statement.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={name: statement.excluded[name] for name in (*changed, "updated_at")},
            )
            await session.execute(statement)

    async def find(
        self, platform: str, client_id: str, enterprise_id: str, team_id: str
    ) -> InstalledApp | None:
        async with self._database.reader() as session:
            row = await session.scalar(
                select(Installation).where(
                    Installation.platform == platform,
                    Installation.client_id == client_id,
                    Installation.enterprise_id == enterprise_id,
                    Installation.team_id == team_id,
                )
            )
        return _value(row) if row is not None else None

    async def find_team(self, platform: str, client_id: str, team_id: str) -> InstalledApp | None:
        """The installation that answers in workspace ``team_id``, whichever organisation it belongs to."""
        async with self._database.reader() as session:
            row = await session.scalar(
                select(Installation)
                .where(
                    Installation.platform == platform,
                    Installation.client_id == client_id,
                    Installation.team_id == team_id,
                )
                .order_by(Installation.installed_at.desc())
                .limit(1)
            )
        return _value(row) if row is not None else None

    async def delete(self, platform: str, client_id: str, enterprise_id: str, team_id: str) -> bool:
        """Forget the tokens of a workspace (uninstalled, or its token revoked); True if there were any."""
        async with self._database.unit_of_work() as session:
            result = await session.execute(
                delete(Installation).where(
                    Installation.platform == platform,
                    Installation.client_id == client_id,
                    Installation.enterprise_id == enterprise_id,
                    Installation.team_id == team_id,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def replace_token(
        self, found: InstalledApp, token: str, refresh_token: str | None, expires_at: datetime | None
    ) -> None:
        """A rotated bot token for the installation ``found`` (nothing happens if it was deleted since)."""
        async with self._database.unit_of_work() as session:
            await session.execute(
                update(Installation)
                .where(*(getattr(Installation, name) == getattr(found, name) for name in _KEY))
                .values(
                    bot_token=token,
                    bot_refresh_token=refresh_token,
                    bot_token_expires_at=expires_at,
                    updated_at=utcnow(),
                )
            )


class OAuthStates:
    """The ``state`` of each install in progress: issued at the install page, consumed once by the redirect,
    void after ``ttl``. Expired states are deleted whenever one is issued; at most ``limit`` are pending."""

    def __init__(self, database: Database, *, ttl: timedelta, limit: int = STATE_LIMIT) -> None:
        self._database = database
        self._ttl = ttl
        self._limit = limit

    async def issue(self) -> str | None:
        """A new state, or None when ``limit`` installs are already in progress."""
        state = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._database.unit_of_work() as session:
            await session.execute(delete(OAuthState).where(OAuthState.expires_at <= now))
            pending = await session.scalar(select(func.count()).select_from(OAuthState))
            if (pending or 0) >= self._limit:
                return None
            session.add(OAuthState(state=state, expires_at=now + self._ttl))
        return state

    async def consume(self, state: str) -> bool:
        """True once for a state that was issued and has not expired."""
        if not state or len(state) > 64:
            return False
        async with self._database.unit_of_work() as session:
            result = await session.execute(
                delete(OAuthState).where(OAuthState.state == state, OAuthState.expires_at > utcnow())
            )
        return bool(getattr(result, "rowcount", 0))


def _value(row: Installation) -> InstalledApp:
    return InstalledApp(**{f.name: getattr(row, f.name) for f in fields(InstalledApp)})
