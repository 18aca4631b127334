"""What one check of `threadwise doctor` found: a part, its state, and a line for the operator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bots.readiness import describe

State = Literal["ok", "skipped", "wrong"]

CHECK_TIMEOUT = 10.0  # seconds one remote check may take


@dataclass(frozen=True, slots=True)
class Finding:
    """``detail`` says what was found; when ``wrong``, which variable to fix and how."""

    part: str
    state: State
    detail: str

    def line(self, width: int) -> str:
        return f"{self.state:<8} {self.part:<{width}}  {self.detail}"


def ok(part: str, detail: str) -> Finding:
    return Finding(part, "ok", detail)


def skipped(part: str, detail: str) -> Finding:
    return Finding(part, "skipped", detail)


def wrong(part: str, detail: str) -> Finding:
    return Finding(part, "wrong", detail)


async def bounded(part: str, check: Callable[[], Awaitable[list[Finding]]], *, fix: str) -> list[Finding]:
    """Runs ``check`` for up to ``CHECK_TIMEOUT`` seconds; a hang or an unexpected error becomes one ``wrong``
    finding that says ``fix``."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await check()
    except TimeoutError:
        return [wrong(part, f"no answer within {CHECK_TIMEOUT:g} s: {fix}")]
    except Exception as exc:
        return [wrong(part, f"{describe(exc)}: {fix}")]
