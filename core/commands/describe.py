"""How budgets, usage, bans and moderation events read in a reply (chat or shell), as plain-text spans."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.admin.service import BanInfo
from core.commands.results import Paragraph, Text, line
from core.db.models import ModerationEvent
from core.domain.clock import humanize
from core.money.budgets import BudgetLimit, PeriodUsage
from core.money.pricing import format_usd


def describe_limit(limit: BudgetLimit) -> Text:
    """``user slack:U1 per day: $5.00 and 200,000 tokens``."""
    parts = []
    if limit.micros is not None:
        parts.append(format_usd(limit.micros))
    if limit.tokens is not None:
        parts.append(f"{limit.tokens:,} tokens")
    amount = " and ".join(parts) if parts else "no limit"
    return Text(f"{limit.scope} {limit.subject} per {limit.period}: {amount}")


def describe_usage(usage: Sequence[PeriodUsage], now: datetime) -> tuple[Paragraph, ...]:
    """What `/ai usage` shows: spend today and this month, the limits and what is left, a line each."""
    return tuple(line(_period_usage(period, now)) for period in usage)


def _period_usage(period: PeriodUsage, now: datetime) -> str:
    name = "Today" if period.period == "day" else "This month"
    text = f"{name}: {format_usd(period.spent_micros)} ({period.tokens:,} tokens)"
    limit = period.limit
    if limit is not None and limit.micros is not None:
        left = max(0, limit.micros - period.spent_micros)
        text += f" of {format_usd(limit.micros)}, {format_usd(left)} left"
    if limit is not None and limit.tokens is not None:
        text += f"; {max(0, limit.tokens - period.tokens):,} of {limit.tokens:,} tokens left"
    if limit is not None:
        text += f" (resets in {humanize(period.resets_at - now)})"
    return text


def describe_ban(ban: BanInfo) -> Text:
    """``slack:U1 until 2026-12-01 12:00 UTC by slack:U0OPS: spamming``."""
    until = f"until {ban.expires_at:%Y-%m-%d %H:%M} UTC" if ban.expires_at else "until unbanned"
    reason = f": {ban.reason}" if ban.reason else ""
    return Text(f"{ban.platform}:{ban.user_id} {until} by {ban.banned_by}{reason}")


def describe_moderation(event: ModerationEvent) -> Text:
    """One line of the moderation log: when, who, where, what was decided and why."""
    what = ", ".join(event.categories) or "-"
    redacted = f" redacted {', '.join(event.redactions)}" if event.redactions else ""
    top = max(event.scores.items(), key=lambda item: item[1], default=None)
    score = f" ({top[0]} {top[1]:.2f})" if top else ""
    return Text(
        f"{event.created_at:%Y-%m-%d %H:%M} {event.platform}:{event.user_id or '?'} in {event.channel_id} "
        f"{event.direction} {event.action} {what}{score}{redacted}"
    )
