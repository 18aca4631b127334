"""A workspace's spend at a glance (the Slack App Home's admin summary): today, this month and the users who
spent most this month, each a single indexed aggregate over the ledger, whatever the workspace's size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import UsageRecord
from core.money.budgets import ledger_filter
from core.money.periods import period_end, period_start

TOP_USERS = 5


@dataclass(frozen=True, slots=True)
class UserSpend:
    user_id: str  # "" for a user whose data was erased
    micros: int
    tokens: int


@dataclass(frozen=True, slots=True)
class WorkspaceSpend:
    today_micros: int
    today_tokens: int
    month_micros: int
    month_tokens: int
    top_users: tuple[UserSpend, ...]  # this month, most spent first


async def workspace_spend(
    session: AsyncSession, platform: str, workspace_id: str, now: datetime, *, top: int = TOP_USERS
) -> WorkspaceSpend:
    """``platform``/``workspace_id``'s spend today and this month (UTC), and its ``top`` users this month."""
    where = ledger_filter("workspace", f"{platform}:{workspace_id}")
    tokens = UsageRecord.input_tokens + UsageRecord.output_tokens
    totals = []
    for period in ("day", "month"):
        row = (
            await session.execute(
                select(
                    func.coalesce(func.sum(UsageRecord.cost_micros), 0), func.coalesce(func.sum(tokens), 0)
                ).where(
                    where,
                    UsageRecord.created_at >= period_start(period, now),
                    UsageRecord.created_at < period_end(period, now),
                )
            )
        ).one()
        totals.append((int(row[0]), int(row[1])))
    spent = func.sum(UsageRecord.cost_micros)
    rows = await session.execute(
        select(UsageRecord.user_id, spent, func.sum(tokens))
        .where(
            where,
            UsageRecord.created_at >= period_start("month", now),
            UsageRecord.created_at < period_end("month", now),
        )
        .group_by(UsageRecord.user_id)
        .order_by(spent.desc(), UsageRecord.user_id)
        .limit(top)
    )
    users = tuple(
        UserSpend(str(user or ""), int(micros or 0), int(used or 0)) for user, micros, used in rows.all()
    )
    (day_micros, day_tokens), (month_micros, month_tokens) = totals
    return WorkspaceSpend(day_micros, day_tokens, month_micros, month_tokens, users)
