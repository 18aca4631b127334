"""Admin operations (quotas, reports, bans), shared by the CLI and the chat adapters' /ai-admin commands.

Admin rights come only from platform identity: ``THREADWISE_ADMINS`` or what the platform says about the
caller (``ChatUser.is_admin``: Slack workspace admin, Discord Manage Server). Every call is recorded in
``admin_actions``, refusals included.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.answers.feedback import FEEDBACK, FeedbackReport, build_feedback_report
from core.db.models import AdminAction, Ban, Budget, ModerationEvent
from core.db.repositories import insert_for
from core.db.session import Database
from core.domain.clock import Clock, utc_now
from core.domain.errors import BadInput, NotAuthorized
from core.domain.types import ChatUser
from core.guards.bans import ban_changed
from core.money.budgets import SCOPES, BudgetLimit, Budgets, limits_changed
from core.money.periods import PERIODS
from core.money.pricing import usd
from core.money.reports import Report, build_report, resolve_period
from core.money.spend import WorkspaceSpend, workspace_spend

log = logging.getLogger(__name__)

_SUBJECT_SHAPE = {
    "user": "platform:user_id (e.g. slack:U0123)",
    "channel": "platform:workspace_id:channel_id (e.g. slack:T01:C02)",
    "workspace": "platform:workspace_id (e.g. discord:123456)",
    "global": "*",
}


def check_subject(scope: str, subject: str) -> None:
    if scope not in SCOPES:
        raise BadInput(f"Unknown scope {scope!r}: use one of {', '.join(SCOPES)}.")
    parts = subject.split(":")
    expected = {"user": 2, "channel": 3, "workspace": 2}
    ok = subject == "*" if scope == "global" else len(parts) == expected[scope] and all(parts)
    if not ok:
        raise BadInput(f"A {scope} subject looks like {_SUBJECT_SHAPE[scope]}, not {subject!r}.")


def check_period(period: str) -> str:
    aliases = {"daily": "day", "monthly": "month"}
    period = aliases.get(period, period)
    if period not in PERIODS:
        raise BadInput(f"Unknown period {period!r}: use day or month.")
    return period


@dataclass(frozen=True, slots=True)
class BanInfo:
    platform: str
    user_id: str
    reason: str
    banned_by: str
    expires_at: datetime | None


class AdminService:
    def __init__(
        self,
        database: Database,
        budgets: Budgets,
        *,
        admins: Sequence[str] = (),
        admin_tools_for_workspace_admins: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self._db = database
        self._budgets = budgets
        self._admins = frozenset(admins)
        self._workspace_admin_tools = admin_tools_for_workspace_admins
        self._clock = clock

    def is_admin(self, actor: ChatUser) -> bool:
        return actor.is_admin or self.is_operator(actor)

    def may_use_admin_tools(self, actor: ChatUser) -> bool:
        """Whether the asker's turns may use THREADWISE_ADMIN_ONLY_TOOLS: operators only, unless
        THREADWISE_ADMIN_TOOLS_FOR_WORKSPACE_ADMINS extends them to workspace admins (anyone can create a
        Discord server and be its admin). Judged on the asker alone: nothing in the context grants it."""
        return self.is_operator(actor) or (self._workspace_admin_tools and actor.is_admin)

    def is_operator(self, actor: ChatUser) -> bool:
        """Listed in THREADWISE_ADMINS (or the shell): rights over every workspace, user and global limit.
        Everyone else who is an admin is one through their platform, for their own workspace only."""
        return actor.platform == "cli" or f"{actor.platform}:{actor.user_id}" in self._admins

    async def refuse(self, actor: ChatUser, action: str, target: str | None, message: str) -> NoReturn:
        """Record a refused admin action and raise NotAuthorized with ``message``."""
        async with self._db.unit_of_work() as session:
            session.add(self._action(actor, action, target, {"refused": message}, allowed=False))
        log.warning("refused admin action %s by %s:%s", action, actor.platform, actor.user_id)
        raise NotAuthorized(message)

    async def _authorize(
        self, actor: ChatUser, action: str, target: str | None, details: dict[str, Any]
    ) -> None:
        if self.is_admin(actor):
            return
        async with self._db.unit_of_work() as session:
            session.add(self._action(actor, action, target, details, allowed=False))
        log.warning("refused admin action %s by %s:%s", action, actor.platform, actor.user_id)
        raise NotAuthorized("Only admins can do that.")

    def _action(
        self, actor: ChatUser, action: str, target: str | None, details: dict[str, Any], *, allowed: bool
    ) -> AdminAction:
        return AdminAction(
            platform=actor.platform,
            actor_id=actor.user_id,
            action=action,
            target=target,
            details=details,
            allowed=allowed,
            created_at=self._clock(),
        )

    async def record(self, actor: ChatUser, action: str, target: str | None, details: dict[str, Any]) -> None:
        """Authorize and record an admin action carried out elsewhere (erasure, purge)."""
        await self._authorize(actor, action, target, details)
        async with self._db.unit_of_work() as session:
            session.add(self._action(actor, action, target, details, allowed=True))

    async def spend_summary(self, actor: ChatUser, workspace: tuple[str, str]) -> WorkspaceSpend | None:
        """``workspace``'s spend at a glance for an admin of it (None for anyone else): a view that changes
        nothing and is opened often (the Slack App Home), so it is not recorded as an admin action."""
        if not self.is_admin(actor):
            return None
        async with self._db.reader() as session:
            return await workspace_spend(session, workspace[0], workspace[1], self._clock())

    # ---- quotas --------------------------------------------------------------------------------------------

    async def quota_set(
        self,
        actor: ChatUser,
        *,
        scope: str,
        subject: str,
        period: str,
        usd_limit: Decimal | None,
        token_limit: int | None,
    ) -> BudgetLimit:
        """Override one budget; both limits None means "no limit" for this subject despite the defaults."""
        period = check_period(period)
        details = {
            "scope": scope,
            "period": period,
            "usd": str(usd_limit) if usd_limit is not None else None,
            "tokens": token_limit,
        }
        await self._authorize(actor, "quota.set", subject, details)
        check_subject(scope, subject)
        if (usd_limit is not None and usd_limit < 0) or (token_limit is not None and token_limit < 0):
            raise BadInput("Limits cannot be negative.")
        micros = usd(usd_limit) if usd_limit is not None else None
        async with self._db.unit_of_work() as session:
            values = {
                "limit_micros": micros,
                "limit_tokens": token_limit,
                "set_by": _who(actor),
                "updated_at": self._clock(),
            }
            await session.execute(
                insert_for(session, Budget)
                .values(scope=scope, subject=subject, period=period, **values)
                .on_conflict_do_update(index_elements=["scope", "subject", "period"], set_=values)
            )
            session.add(self._action(actor, "quota.set", subject, details, allowed=True))
            await limits_changed(self._db, session)
        return BudgetLimit(scope, subject, period, micros, token_limit, True)

    async def quota_clear(self, actor: ChatUser, *, scope: str, subject: str, period: str) -> bool:
        period = check_period(period)
        await self._authorize(actor, "quota.clear", subject, {"scope": scope, "period": period})
        check_subject(scope, subject)
        async with self._db.unit_of_work() as session:
            result = await session.execute(
                delete(Budget).where(
                    Budget.scope == scope, Budget.subject == subject, Budget.period == period
                )
            )
            session.add(
                self._action(actor, "quota.clear", subject, {"scope": scope, "period": period}, allowed=True)
            )
            await limits_changed(self._db, session)
        return bool(getattr(result, "rowcount", 0))

    async def quota_show(self, actor: ChatUser, *, scope: str | None = None) -> list[BudgetLimit]:
        """Overrides set by admins (optionally of one scope), then the defaults from settings."""
        await self._authorize(actor, "quota.show", scope, {})
        async with self._db.reader() as session:
            statement = select(Budget).order_by(Budget.scope, Budget.subject, Budget.period)
            if scope is not None:
                statement = statement.where(Budget.scope == scope)
            rows = (await session.execute(statement)).scalars().all()
        limits = [
            BudgetLimit(r.scope, r.subject, r.period, r.limit_micros, r.limit_tokens, True) for r in rows
        ]
        for (default_scope, period), (micros, tokens) in sorted(self._budgets.defaults.items()):
            if scope in (None, default_scope):
                limits.append(BudgetLimit(default_scope, "(default)", period, micros, tokens))
        return limits

    # ---- bans ----------------------------------------------------------------------------------------------

    async def ban(self, actor: ChatUser, target: str, *, reason: str, until: datetime | None) -> BanInfo:
        await self._authorize(actor, "ban", target, {"reason": reason, "until": _iso(until)})
        check_subject("user", target)
        platform, user_id = target.split(":")
        async with self._db.unit_of_work() as session:
            values = {
                "reason": reason,
                "banned_by": _who(actor),
                "created_at": self._clock(),
                "expires_at": until,
            }
            await session.execute(
                insert_for(session, Ban)
                .values(platform=platform, user_id=user_id, **values)
                .on_conflict_do_update(index_elements=["platform", "user_id"], set_=values)
            )
            session.add(
                self._action(actor, "ban", target, {"reason": reason, "until": _iso(until)}, allowed=True)
            )
            await ban_changed(self._db, session, platform, user_id)
        return BanInfo(platform, user_id, reason, _who(actor), until)

    async def unban(self, actor: ChatUser, target: str) -> bool:
        await self._authorize(actor, "unban", target, {})
        check_subject("user", target)
        platform, user_id = target.split(":")
        async with self._db.unit_of_work() as session:
            result = await session.execute(
                delete(Ban).where(Ban.platform == platform, Ban.user_id == user_id)
            )
            session.add(self._action(actor, "unban", target, {}, allowed=True))
            await ban_changed(self._db, session, platform, user_id)
        return bool(getattr(result, "rowcount", 0))

    async def bans(self, actor: ChatUser) -> list[BanInfo]:
        await self._authorize(actor, "ban.list", None, {})
        async with self._db.reader() as session:
            rows = (await session.execute(select(Ban).order_by(Ban.platform, Ban.user_id))).scalars().all()
        now = self._clock()
        return [
            BanInfo(r.platform, r.user_id, r.reason, r.banned_by, r.expires_at)
            for r in rows
            if r.expires_at is None or r.expires_at > now
        ]

    # ---- reports -------------------------------------------------------------------------------------------

    async def report(
        self, actor: ChatUser, *, period: str, by: str, workspace: tuple[str, str] | None = None
    ) -> Report | FeedbackReport:
        await self._authorize(actor, "report", None, {"period": period, "by": by})
        start, end, label = resolve_period(period, self._clock())
        report: Report | FeedbackReport
        async with self._db.reader() as session:
            if by == FEEDBACK:
                report = await build_feedback_report(
                    session, start=start, end=end, label=label, workspace=workspace
                )
            else:
                report = await build_report(
                    session, by=by, start=start, end=end, label=label, workspace=workspace
                )
        async with self._db.unit_of_work() as session:
            session.add(self._action(actor, "report", None, {"period": period, "by": by}, allowed=True))
        return report

    # ---- moderation audit ----------------------------------------------------------------------------------

    async def moderation(
        self,
        actor: ChatUser,
        *,
        limit: int = 20,
        user: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        workspace: tuple[str, str] | None = None,
    ) -> list[ModerationEvent]:
        """Recent moderation decisions, newest first; ``user`` is platform:user_id, ``action`` e.g. block."""
        filters = {"limit": limit, "user": user, "action": action, "since": _iso(since)}
        await self._authorize(actor, "moderation.list", user, filters)
        if not 1 <= limit <= 200:
            raise BadInput("Show between 1 and 200 events.")
        statement = select(ModerationEvent).order_by(ModerationEvent.id.desc()).limit(limit)
        if user is not None:
            platform, _, user_id = user.partition(":")
            if not user_id:
                raise BadInput(f"A user looks like platform:user_id (e.g. slack:U0123), not {user!r}.")
            statement = statement.where(
                ModerationEvent.platform == platform, ModerationEvent.user_id == user_id
            )
        if action is not None:
            statement = statement.where(ModerationEvent.action == action)
        if workspace is not None:
            statement = statement.where(
                ModerationEvent.platform == workspace[0], ModerationEvent.workspace_id == workspace[1]
            )
        if since is not None:
            statement = statement.where(ModerationEvent.created_at >= since)
        async with self._db.reader() as session:
            rows = list((await session.execute(statement)).scalars())
        async with self._db.unit_of_work() as session:
            session.add(self._action(actor, "moderation.list", user, filters, allowed=True))
        return rows

    async def actions(self, session: AsyncSession, limit: int = 50) -> list[AdminAction]:
        rows = await session.execute(select(AdminAction).order_by(AdminAction.id.desc()).limit(limit))
        return list(rows.scalars())


def _who(actor: ChatUser) -> str:
    return f"{actor.platform}:{actor.user_id}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
