"""The subscribers of one database's notices in this process (``Database.board``): caches that every turn
reads (bans, budget limits) subscribe here when they are built, whatever ``Notices`` instance later listens or
publishes, so they hear a change made on any replica (PostgreSQL) or in this process (SQLite and PostgreSQL)
without being handed the replica's ``Notices``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Notice = Mapping[str, Any]  # the fields of one notice (JSON object), its topic left out
Handler = Callable[[Notice], None]  # may raise ValueError, KeyError or TypeError on a malformed notice


class NoticeBoard:
    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {}
        self.reopened: list[Callable[[], None]] = []

    def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers.setdefault(topic, []).append(handler)

    def on_listening(self, callback: Callable[[], None]) -> None:
        """``callback`` runs whenever a listening connection of this database opens (again)."""
        self.reopened.append(callback)
