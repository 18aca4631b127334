"""slack_sdk's installation and OAuth state stores on our own database (core/admin/installations.py).

One row per app and workspace (or organisation): a reinstall replaces it, a rotated token updates it, and
``app_uninstalled`` / ``tokens_revoked`` delete it. No user tokens are kept (the app asks for no user scopes).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator

from bots.slack.identity import PLATFORM
from core.admin.installations import Installations, InstalledApp, OAuthStates

log = logging.getLogger(__name__)

ROTATE_MINUTES = 120  # a rotating bot token is refreshed this long before it expires (bolt's default)


class SqlInstallationStore(AsyncInstallationStore):
    def __init__(self, installations: Installations, client_id: str) -> None:
        self._installations = installations
        self.client_id = client_id

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        await self._installations.save(self._app(installation))
        log.info("Slack app installed in workspace %s", installation.team_id or installation.enterprise_id)

    async def async_save_bot(self, bot: Bot) -> None:
        await self._installations.save(self._app(bot), bot_only=True)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        return _installation(found).to_bot() if found is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        if found is None or (user_id is not None and user_id != found.installer_user_id):
            return None  # a user's own installation: there are none (no user scopes)
        return _installation(found)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._delete(enterprise_id, team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:  # a user's token revoked: none is kept, the bot's stays
            await self._delete(enterprise_id, team_id)

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._delete(enterprise_id, team_id)

    async def _find(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None
    ) -> InstalledApp | None:
        team = "" if is_enterprise_install or team_id is None else team_id
        return await self._installations.find(PLATFORM, self.client_id, enterprise_id or "", team)

    async def _delete(self, enterprise_id: str | None, team_id: str | None) -> None:
        enterprise = enterprise_id or ""
        if await self._installations.delete(PLATFORM, self.client_id, enterprise, team_id or ""):
            log.info("Slack app removed from workspace %s: its tokens are deleted", team_id or enterprise)

    def _app(self, source: Installation | Bot) -> InstalledApp:
        if not source.bot_token:
            raise ValueError("an installation without a bot token")  # bolt answers storage_error
        enterprise = source.is_enterprise_install
        installer = source.user_id if isinstance(source, Installation) else None
        return InstalledApp(
            platform=PLATFORM,
            client_id=self.client_id,
            enterprise_id=source.enterprise_id or "",
            team_id="" if enterprise else source.team_id or "",
            bot_token=source.bot_token,
            is_enterprise_install=enterprise,
            app_id=source.app_id,
            team_name=source.team_name,
            enterprise_name=source.enterprise_name,
            enterprise_url=getattr(source, "enterprise_url", None),
            installer_user_id=installer,
            bot_id=source.bot_id,
            bot_user_id=source.bot_user_id,
            bot_scopes=",".join(source.bot_scopes or ()),
            bot_refresh_token=source.bot_refresh_token,
            bot_token_expires_at=_when(source.bot_token_expires_at),
            token_type=getattr(source, "token_type", None),
            installed_at=datetime.fromtimestamp(source.installed_at, UTC),
        )


class SqlOAuthStateStore(AsyncOAuthStateStore):
    def __init__(self, states: OAuthStates) -> None:
        self._states = states

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: object, **kwargs: object) -> str:
        state = await self._states.issue()
        if state is None:
            raise TooManyInstalls()
        return state

    async def async_consume(self, state: str) -> bool:
        return await self._states.consume(state)


class TooManyInstalls(Exception):
    """More installs in progress than the state table holds (/slack/install answers 503)."""


class WorkspaceTokens:
    """The bot token of a workspace by its team id, outside any Slack request (crash recovery, the mod log):
    the one its installation holds, rotated first when it is about to expire."""

    def __init__(self, installations: Installations, client_id: str, rotator: AsyncTokenRotator) -> None:
        self._installations = installations
        self._client_id = client_id
        self._rotator = rotator

    async def token(self, team_id: str) -> str | None:
        found = await self._installations.find_team(PLATFORM, self._client_id, team_id)
        if found is None:
            return None
        if found.bot_refresh_token is None or found.bot_token_expires_at is None:
            return found.bot_token
        bot = _installation(found).to_bot()
        try:
            rotated = await self._rotator.perform_bot_token_rotation(
                bot=bot, minutes_before_expiration=ROTATE_MINUTES
            )
        except (SlackTokenRotationError, SlackApiError) as exc:
            log.warning("could not rotate the bot token of workspace %s: %s", team_id, exc)
            return None
        if rotated is None:
            return found.bot_token
        await self._installations.replace_token(
            found, rotated.bot_token, rotated.bot_refresh_token, _when(rotated.bot_token_expires_at)
        )
        return rotated.bot_token


def _installation(found: InstalledApp) -> Installation:
    expires = found.bot_token_expires_at
    return Installation(
        app_id=found.app_id,
        enterprise_id=found.enterprise_id or None,
        enterprise_name=found.enterprise_name,
        enterprise_url=found.enterprise_url,
        team_id=found.team_id or None,
        team_name=found.team_name,
        bot_token=found.bot_token,
        bot_id=found.bot_id,
        bot_user_id=found.bot_user_id,
        bot_scopes=found.bot_scopes,
        bot_refresh_token=found.bot_refresh_token,
        bot_token_expires_at=int(expires.timestamp()) if expires is not None else None,
        user_id=found.installer_user_id or "",
        is_enterprise_install=found.is_enterprise_install,
        token_type=found.token_type,
        installed_at=(found.installed_at or datetime.now(UTC)).timestamp(),
    )


def _when(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None
