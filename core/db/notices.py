"""Notices between replicas: one PostgreSQL ``LISTEN/NOTIFY`` channel (``threadwise_notices``) that carries
small JSON notices by topic, heard on one listening connection per replica (``Notices.listening``, held
while the service runs, checked every 30 s and opened again when it breaks).

Topics: ``stop`` (a Stop clicked for a turn another replica runs), ``policy`` (a channel's policy changed),
``persona`` (a channel's or workspace's persona changed), ``approval`` (a tool approval was decided), ``ban``
(a user banned or unbanned), ``budget`` (a budget override set or cleared). A notice
is sent inside the transaction that made the change, so it goes out exactly when the change commits; after
the commit this process's own subscribers hear it too, at once (and again when PostgreSQL echoes it back:
handlers are idempotent). A notice sent while a replica's listening connection is down is lost for that
replica: subscribers that cache register ``on_start_over`` (the board's) to drop what they hold whenever the
connection (re)opens, and keep a safety TTL. SQLite serves one process: notices are local only, and a change
made by another process (`threadwise admin`) reaches the service through the count of setting changes that
the change bumps (``SETTINGS`` topics) and every turn's claim reads (core/db/notice_board.py). Besides a
``Notices``'s own subscribers, every notice reaches the database's ``board`` (core/db/notice_board.py), where
caches built without the replica's ``Notices`` subscribe.

Payloads are bounded (``MAX_PAYLOAD``) and checked when heard: a malformed or oversized notice is logged
and ignored, a topic this replica does not know (a newer replica's) is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.notice_board import Handler, Notice
from core.db.repositories import count_setting_change
from core.db.session import Database

__all__ = ["CHANNEL", "MAX_PAYLOAD", "TOPICS", "Notice", "Notices", "place_in"]

log = logging.getLogger(__name__)

CHANNEL = "threadwise_notices"  # the NOTIFY channel every replica listens on
TOPICS = frozenset({"stop", "policy", "persona", "approval", "ban", "budget"})
SETTINGS = frozenset({"policy", "persona", "ban", "budget"})  # changes of what processes cache: counted too
MAX_PAYLOAD = 1024  # bytes of one notice's JSON (PostgreSQL allows 8000)
CHECK_EVERY = 30.0  # seconds between checks that the listening connection is alive
RETRY_AFTER = 2.0  # seconds before listening again after the connection broke


class Notices:
    """This replica's end of the notices: ``publish`` in a transaction, ``subscribe`` to a topic,
    ``on_listening`` to hear that notices may have been missed, ``listening`` while serving."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._handlers: dict[str, list[Handler]] = {topic: [] for topic in TOPICS}
        self._reopened: list[Callable[[], None]] = []
        self.connections = 0  # listening connections opened so far (more than one: it broke and came back)
        self.heard = 0  # notices heard from the listening connection (well-formed or not)
        self._listening = False
        self.listener_pid: int | None = None  # the listening connection's server process (pg_stat_activity)

    @property
    def is_shared(self) -> bool:
        """Whether notices reach other replicas (PostgreSQL); on SQLite they stay in this process."""
        return not self._db.is_sqlite

    def subscribe(self, topic: str, handler: Handler) -> None:
        if topic not in TOPICS:
            raise ValueError(f"unknown notice topic {topic!r}")
        self._handlers[topic].append(handler)

    def on_listening(self, callback: Callable[[], None]) -> None:
        """``callback`` runs whenever the listening connection opens (again): notices may have been missed."""
        self._reopened.append(callback)

    async def publish(self, topic: str, fields: Notice, session: AsyncSession | None = None) -> None:
        """Send a notice when ``session``'s transaction commits (every replica hears it, this one as soon as
        it commits); without ``session``, in a transaction of its own, now. A setting's change (``SETTINGS``)
        also bumps the count of setting changes in that transaction, on every database: a process that
        cannot hear the notice (SQLite: another process) drops its caches at its next turn."""
        payload = encode(topic, fields)
        if session is None:
            async with self._db.unit_of_work() as own:
                await self.publish(topic, fields, own)
            return
        if topic in SETTINGS:
            await count_setting_change(session)
        if self.is_shared:
            await session.execute(select(func.pg_notify(CHANNEL, payload)))
        event.listen(session.sync_session, "after_commit", lambda _session: self.deliver(payload), once=True)

    def deliver(self, payload: str) -> None:
        """Hand a notice (its JSON) to this process's subscribers; a malformed one is logged and ignored."""
        try:
            topic, fields = decode(payload)
        except ValueError as exc:
            log.warning("ignored a malformed notice: %s", exc)
            return
        for handler in (*self._handlers.get(topic, ()), *self._db.board.handlers.get(topic, ())):
            try:
                handler(fields)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignored a malformed %s notice: %s", topic, exc)

    @contextlib.asynccontextmanager
    async def listening(self, check_every: float = CHECK_EVERY) -> AsyncIterator[None]:
        """On PostgreSQL: LISTEN on one dedicated connection inside the block, checked every ``check_every``
        seconds and opened again should it break (a database restart); nothing on SQLite. The block starts
        once listening (or once the first attempt failed: serving does not wait for the database). Entered
        again while listening (e.g. through ``StopChannel.listening``), it opens no second connection."""
        if not self.is_shared or self._listening:
            yield
            return
        self._listening = True
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen(ready, check_every), name="notices between replicas")
        waiting = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait((task, waiting), return_when="FIRST_COMPLETED")
            yield
        finally:
            self._listening = False
            waiting.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, ready: asyncio.Event, check_every: float) -> None:
        def on_notify(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            self.heard += 1
            self.deliver(payload)

        while True:
            try:
                async with self._db.engine.connect() as connection:
                    raw = await connection.get_raw_connection()
                    driver: Any = raw.driver_connection  # asyncpg's connection
                    await driver.add_listener(CHANNEL, on_notify)
                    try:
                        self.connections += 1
                        self.listener_pid = driver.get_server_pid()
                        self._listening_again()
                        ready.set()
                        while True:
                            await asyncio.sleep(check_every)
                            await driver.execute("SELECT 1")
                    finally:  # the connection may go back to the pool: it stops listening first
                        with contextlib.suppress(Exception):
                            async with asyncio.timeout(2.0):
                                await driver.remove_listener(CHANNEL, on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection broke: listen again on a new one
                log.warning("notices between replicas: %s; listening again", type(exc).__name__)
                ready.set()  # serving does not wait for the database to come back
                await asyncio.sleep(RETRY_AFTER)

    def _listening_again(self) -> None:
        for callback in self._reopened:
            try:
                callback()
            except Exception:
                log.exception("a notice subscriber failed to start over")
        self._db.board.start_over()


def place_in(notice: Notice) -> tuple[str, str, str]:
    """The (platform, workspace_id, channel_id) a ``policy`` or ``persona`` notice names (``channel``)."""
    place = notice.get("channel")
    if not isinstance(place, list) or len(place) != 3 or not all(isinstance(part, str) for part in place):
        raise ValueError("no channel")
    return (place[0], place[1], place[2])


def encode(topic: str, fields: Notice) -> str:
    if topic not in TOPICS:
        raise ValueError(f"unknown notice topic {topic!r}")
    payload = json.dumps({**fields, "topic": topic}, separators=(",", ":"), ensure_ascii=False)
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError(f"a {topic} notice is over {MAX_PAYLOAD} bytes")
    return payload


def decode(payload: str) -> tuple[str, Notice]:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"over {MAX_PAYLOAD} bytes")
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("topic"), str):
        raise ValueError("no topic")
    topic = data.pop("topic")
    return topic, data
