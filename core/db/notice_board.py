"""The subscribers of one database's notices in this process (``Database.board``): caches that every turn
reads (channel policies, personas, bans, budget limits) subscribe here when they are built, whatever
``Notices`` instance later listens or publishes, so they hear a change made on any replica (PostgreSQL) or in
this process (SQLite and PostgreSQL) without being handed the replica's ``Notices``.

They also start over (``on_start_over``) whenever this process may have missed notices: when a listening
connection (re)opens, and when a turn's claim finds that the count of setting changes moved since the turn
before (``saw_changes``), which is how a change made by another process reaches a SQLite service, where
notices do not leave their process: every change of a cached setting bumps that count in its transaction
(``count_setting_change``, where its notice is published)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Notice = Mapping[str, Any]  # the fields of one notice (JSON object), its topic left out
Handler = Callable[[Notice], None]  # may raise ValueError, KeyError or TypeError on a malformed notice

_UNSEEN = -1  # no count read yet (a count is never negative): the first one read starts the caches over


class NoticeBoard:
    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {}
        self.starting_over: list[Callable[[], None]] = []
        self._changes: int | None = _UNSEEN  # the count of setting changes the last turn read

    def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers.setdefault(topic, []).append(handler)

    def on_start_over(self, callback: Callable[[], None]) -> None:
        """``callback`` (a cache's ``clear``) runs whenever notices may have been missed."""
        self.starting_over.append(callback)

    def saw_changes(self, changes: int | None) -> None:
        """The count of setting changes as a turn's claim read it: when it is not the count the turn before
        read, a setting changed meanwhile (in another process, or here) and every cache starts over."""
        if changes == self._changes:
            return
        self._changes = changes
        self.start_over()

    def start_over(self) -> None:
        for callback in self.starting_over:
            try:
                callback()
            except Exception:
                log.exception("a notice subscriber failed to start over")
