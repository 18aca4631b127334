"""What a parser returns, and the bounds it reads within.

A parser turns bytes into ``Section``s (one per page, slide or sheet; one in all for formats without pages)
and stops early, saying why, when it has collected as many characters as can be sent, when it has read the
most pages a file may have read, or when its time is up. Anything that makes a file unreadable is raised as
``Unreadable`` with a reason a user understands ("it is encrypted").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import StrEnum

_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class Unreadable(Exception):
    """The file cannot be read; ``reason`` completes "I couldn't read report.pdf: …"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stop(StrEnum):
    """Why a parser stopped before the end of the file."""

    FULL = "full"  # collected as much text as can be sent
    PAGES = "pages"  # read the most pages (slides) a file may have read
    TIME = "time"  # out of time


@dataclass(frozen=True, slots=True)
class Section:
    number: int  # 1-based; 0 for the one section of a format without pages
    marker: str  # "--- page 2 ---", "--- sheet 1 \"Q1\" ---", "" for none
    text: str


@dataclass(slots=True)
class Extracted:
    unit: str  # "page", "slide", "sheet" or "" (a format without them)
    total: int  # how many units the file has (0 when it has none or it is not known)
    sections: list[Section] = field(default_factory=list)
    stopped: Stop | None = None

    def render(self) -> str:
        return "\n\n".join(f"{s.marker}\n{s.text}".strip("\n") if s.marker else s.text for s in self.sections)


class Bounds:
    """Characters a parser may collect, pages it may read, and its deadline (checked between pages)."""

    def __init__(self, *, max_chars: int, max_pages: int, seconds: float) -> None:
        self.max_chars = max_chars
        self.max_pages = max_pages
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds
        self.chars = 0

    def stop(self, pages_read: int = 0) -> Stop | None:
        """Why reading must stop before the next page (None: go on)."""
        if self.chars >= self.max_chars:
            return Stop.FULL
        if pages_read >= self.max_pages:
            return Stop.PAGES
        if time.monotonic() >= self._deadline:
            return Stop.TIME
        return None

    def take(self, text: str) -> str:
        """``text`` counted against the characters left (cut to them)."""
        room = max(0, self.max_chars - self.chars)
        kept = text[:room]
        self.chars += len(kept)
        return kept


def require_text(extracted: Extracted, bounds: Bounds, empty: str) -> Extracted:
    """``extracted`` if it holds any text; else Unreadable, saying ``empty`` or that time ran out first."""
    if any(section.text for section in extracted.sections):
        return extracted
    if extracted.stopped is Stop.TIME:
        raise Unreadable(f"reading it took longer than {bounds.seconds:g} seconds")
    raise Unreadable(empty)


def tidy(text: str) -> str:
    """Runs of spaces as one, no trailing spaces, at most one blank line in a row (PDF and HTML text is full
    of layout whitespace that costs tokens and says nothing)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def decode(data: bytes) -> str:
    """The text of a text-based document: UTF-8 (with or without a byte-order mark), UTF-16 with one, else
    Windows-1252 (what spreadsheet programs often write); a file with NUL bytes is no text file."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise Unreadable("it is damaged (not valid UTF-16 text)") from None
    if b"\x00" in data:
        raise Unreadable("it is not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
