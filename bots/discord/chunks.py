"""Discord's message limit, and how a reply is split at it (the splitting itself is bots/splitting.py):
at the last line break past half a message, a space, or hard; or cut, for what must be one message."""

from __future__ import annotations

from bots.splitting import Splitting

MESSAGE_LIMIT = 2000
SPLITTING = Splitting(MESSAGE_LIMIT)


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one Discord message: cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as Discord messages of at most ``limit`` characters."""
    return Splitting(limit).split(text)
