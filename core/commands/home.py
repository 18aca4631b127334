"""What a user's home page shows (the Slack App Home): their usage today and this month, what is left of each
budget that applies to them, the models they can pick, and for admins their workspace's spend. Structured
values; the adapter lays them out. Every number comes from the ledger and the budget counters the turns
keep (core/money), read in a bounded number of queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.admin.service import AdminService
from core.domain.clock import Clock, humanize
from core.domain.types import ChatUser, ConversationKey
from core.money.budgets import Budgets, BudgetStanding, PeriodUsage
from core.money.pricing import format_usd
from core.money.spend import WorkspaceSpend

# A home page belongs to no channel: the budgets shown are the user's own, their workspace's and the overall
# one; a channel's budget is named where it applies (the refusal in that channel says so).
HOME_SCOPES = ("user", "workspace", "global")


@dataclass(frozen=True, slots=True)
class HomeView:
    user: ChatUser
    now: datetime
    usage: tuple[PeriodUsage, ...]  # the user's spend today and this month
    budgets: tuple[BudgetStanding, ...]  # every limit of HOME_SCOPES on them, with what is left
    models: tuple[str, ...]  # what `/ai model` offers, the default first
    default_model: str
    workspace: WorkspaceSpend | None  # admins only


class Home:
    def __init__(
        self,
        *,
        budgets: Budgets,
        admin: AdminService,
        default_model: str,
        models: Sequence[str],
        clock: Clock,
    ) -> None:
        self._budgets = budgets
        self._admin = admin
        self._default = default_model
        models = tuple(models) or (default_model,)
        self._models = models if default_model in models else (default_model, *models)
        self._clock = clock

    async def view(self, user: ChatUser, key: ConversationKey) -> HomeView:
        """``user``'s page in ``key``'s workspace (``key.channel_id`` may be empty: no channel applies)."""
        usage = await self._budgets.usage_of(user, key)
        budgets = await self._budgets.standing(key, user.user_id, scopes=HOME_SCOPES)
        spend = await self._admin.spend_summary(user, (key.platform, key.workspace_id))
        return HomeView(
            user=user,
            now=self._clock(),
            usage=tuple(usage),
            budgets=tuple(budgets),
            models=self._models,
            default_model=self._default,
            workspace=spend,
        )


_OWNER = {
    "user": "Your",
    "workspace": "This workspace's",
    "global": "The overall",
    "channel": "This channel's",
}
_PERIOD = {"day": "daily", "month": "monthly"}


def budget_line(standing: BudgetStanding, now: datetime) -> str:
    """``Your daily budget: $0.40 left of $1.00 (…held by answers in progress); resets in 5 hours``."""
    limit = standing.limit
    parts = []
    if standing.left_micros is not None and limit.micros is not None:
        parts.append(f"{format_usd(standing.left_micros)} left of {format_usd(limit.micros)}")
    if standing.left_tokens is not None and limit.tokens is not None:
        parts.append(f"{standing.left_tokens:,} of {limit.tokens:,} tokens left")
    held = " (some held by answers in progress)" if standing.held_micros or standing.held_tokens else ""
    owner = f"{_OWNER.get(limit.scope, limit.scope)} {_PERIOD.get(limit.period, limit.period)}"
    when = humanize(standing.resets_at - now)
    return f"{owner} budget: {'; '.join(parts)}{held}; resets in {when}"


def usage_line(usage: PeriodUsage) -> str:
    """``Today: $0.0123 (4,567 tokens)``."""
    name = "Today" if usage.period == "day" else "This month"
    return f"{name}: {format_usd(usage.spent_micros)} ({usage.tokens:,} tokens)"
