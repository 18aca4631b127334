"""UTC budget periods: days and calendar months, their keys and bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

PERIODS = ("day", "month")


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def period_key(period: str, now: datetime) -> str:
    """``2026-11-22`` for a day, ``2026-11`` for a month (formatted by hand: every turn's settlement asks)."""
    day = now.astimezone(UTC)
    month = f"{day.year:04d}-{day.month:02d}"
    return f"{month}-{day.day:02d}" if period == "day" else month
