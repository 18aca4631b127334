"""Time as the core sees it: an injectable UTC clock, and durations typed by admins or shown to users."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.domain.errors import BadInput

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def humanize(delta: timedelta) -> str:
    """'3 h 12 min', '45 min', '20 seconds', '2 days 4 h'."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return (
            f"{days} day{'s' if days > 1 else ''} {hours} h"
            if hours
            else f"{days} day{'s' if days > 1 else ''}"
        )
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def parse_duration(text: str) -> timedelta:
    found = re.fullmatch(r"(\d+)\s*([mhdw])", text.strip().lower())
    if not found:
        raise BadInput(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    amount, unit = int(found.group(1)), found.group(2)
    return {
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
        "w": timedelta(weeks=amount),
    }[unit]
