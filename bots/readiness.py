"""`/readyz`: may this process take traffic now? Every part that must work is checked, concurrently, each
within ``CHECK_TIMEOUT`` seconds, so the answer comes within a few seconds even when a dependency is gone.

Parts: ``database`` (answers ``SELECT 1``), ``migrations`` (schema at this version's head), and every running
adapter (``slack``, ``discord``), which registers a cheap status of its connection when it is up. While the
process shuts down (``start_draining``) the answer is 503 whatever the parts say, so a load balancer stops
sending work before the adapters stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.db import health
from core.db.session import Database

CHECK_TIMEOUT = 2.0  # seconds one part may take before it counts as not answering

# A part's check: None when it works, else one line saying what is wrong. Raising counts as failing too.
Check = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Report:
    ready: bool
    draining: bool
    parts: dict[str, str]  # part -> "ok" or what is wrong

    @property
    def failing(self) -> list[str]:
        return [part for part, state in self.parts.items() if state != "ok"]

    def body(self) -> dict[str, object]:
        status = "draining" if self.draining else "ready" if self.ready else "not ready"
        return {"status": status, "failing": self.failing, "parts": self.parts}


class Readiness:
    """The parts `/readyz` checks, and the draining flag the shutdown sets."""

    def __init__(self, *, timeout: float = CHECK_TIMEOUT) -> None:
        self.timeout = timeout
        self._checks: dict[str, Check] = {}
        self._draining = False
        self._running: asyncio.Task[Report] | None = None

    def add(self, part: str, check: Check) -> None:
        self._checks[part] = check

    def remove(self, part: str) -> None:
        self._checks.pop(part, None)

    def add_database(self, database: Database) -> None:
        """``database`` and ``migrations``; the head revision is read once, here."""
        from core.db import migrate

        head = migrate.head_revision()

        async def answers() -> str | None:
            await health.ping(database)
            return None

        self.add("database", answers)
        self.add("migrations", lambda: health.schema_gap(database, head))

    @property
    def draining(self) -> bool:
        return self._draining

    def start_draining(self) -> None:
        """From now on the process is not ready: it is shutting down (set once, never cleared)."""
        self._draining = True

    async def report(self) -> Report:
        """Every part's state. Concurrent callers share one round of checks, so probes never pile up."""
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check_all(), name="readiness")
        return await asyncio.shield(self._running)

    async def _check_all(self) -> Report:
        names = list(self._checks)
        states = await asyncio.gather(*(self._check(self._checks[name]) for name in names))
        parts = dict(zip(names, states, strict=True))
        ready = not self._draining and all(state == "ok" for state in parts.values())
        return Report(ready=ready, draining=self._draining, parts=parts)

    async def _check(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                problem = await check()
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:  # a part that cannot even be asked is not ready, whatever the reason
            return describe(exc)
        return problem or "ok"


def describe(exc: BaseException) -> str:
    """One line naming the failure (the driver's own error when SQLAlchemy wraps one); never a traceback."""
    with contextlib.suppress(AttributeError):
        orig = exc.orig  # type: ignore[attr-defined]
        if isinstance(orig, BaseException):
            exc = orig
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
