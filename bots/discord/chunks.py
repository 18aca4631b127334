"""Discord's message limit, and a reply split at it (the splitting itself is bots/splitting.py)."""

from __future__ import annotations

from bots import splitting

MESSAGE_LIMIT = 2000


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as Discord messages of at most ``limit`` characters."""
    return splitting.split_message(text, limit)
