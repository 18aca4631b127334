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
    return period_start(period, now).strftime("%Y-%m-%d" if period == "day" else "%Y-%m")
