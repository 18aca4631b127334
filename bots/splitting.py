"""A long reply as consecutive messages a platform shows whole (Slack ~4,000 characters, Discord 2,000).

Each piece takes as much text as fits and is cut at the best boundary in reach: a paragraph break (a blank
line outside code, or the edge of a code block) where the platform prefers them, else a line break, else a
space past half the piece, else hard. A cut inside a fenced code block closes the fence at the end of the
piece and reopens it, with its language, at the start of the next one, so every message renders on its own.
A cut depends only on the text up to it, so earlier pieces stay the same while text is appended (streaming).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

FENCE = "```"
_CLOSE = "\n" + FENCE


@dataclass(frozen=True, slots=True)
class Splitting:
    """How one platform splits at its ``limit``.

    ``paragraphs`` (Slack): whole paragraphs and code blocks per message where they fit, then whole lines;
    otherwise (Discord) the last line break past half the message. ``trim_spaces`` (Slack): a cut between
    words drops the spaces there; otherwise the next piece starts with them.
    """

    limit: int
    paragraphs: bool = False
    trim_spaces: bool = False

    def split(self, text: str) -> list[str]:
        if len(text) <= self.limit:
            return [text]
        pieces: list[str] = []
        rest, reopen = text, ""
        while rest:
            rest = reopen + rest
            if len(rest) <= self.limit:
                pieces.append(rest)
                break
            piece, rest, reopen = _first_piece(rest, self, len(reopen))
            pieces.append(piece)
        return [piece for piece in pieces if piece.strip()] or [text[: self.limit]]


def split_message(text: str, limit: int, *, paragraphs: bool = False, trim_spaces: bool = False) -> list[str]:
    """``text`` as pieces of at most ``limit`` characters (see ``Splitting``)."""
    return Splitting(limit, paragraphs, trim_spaces).split(text)


class _Cut(NamedTuple):
    end: int  # the first piece is text[:end]
    resume: int  # the rest starts at text[resume:] (the separator between them is dropped)


def _first_piece(text: str, style: Splitting, floor: int) -> tuple[str, str, str]:
    """The first piece of ``text``, the rest, and the fence line the rest must reopen ("" if none).

    ``floor`` is how much of ``text`` is a reopened fence: a cut must take more than that, so pieces advance.
    """
    cut = _cut(text, style.limit - len(_CLOSE), floor, style)  # room to close a fence
    fence = _open_fence(text[: cut.end])
    if fence is None:  # no fence to close: use the full limit, unless that cuts into a code block
        whole = _cut(text, style.limit, floor, style)
        if _open_fence(text[: whole.end]) is None:
            cut = whole
    piece, rest = text[: cut.end].rstrip(), text[cut.resume :]
    if fence is None:
        return piece, rest, ""
    return piece + _CLOSE, rest, fence + "\n"


def _cut(text: str, room: int, floor: int, style: Splitting) -> _Cut:
    """Where the first piece of at most ``room`` characters ends: paragraph, line, space, or hard."""
    paragraph, line = _breaks(text, room, floor)
    if paragraph is not None and style.paragraphs:
        return paragraph
    if line is not None and (style.paragraphs or line.end > room // 2):
        return line
    space = text.rfind(" ", 0, room if style.trim_spaces else room + 1)
    if space > max(room // 2, floor):
        return _Cut(space, len(text) - len(text[space:].lstrip(" ")) if style.trim_spaces else space)
    return _Cut(room, room)


def _breaks(text: str, room: int, floor: int) -> tuple[_Cut | None, _Cut | None]:
    """The last paragraph break and the last line break of ``text`` in (floor, room]. A paragraph break is
    a blank line outside code or the edge of a code block; the blank lines after it are dropped."""
    paragraph: _Cut | None = None
    line: _Cut | None = None
    in_code = False
    start = 0
    while (newline := text.find("\n", start, room + 1)) != -1:
        fence = text[start:newline].strip().startswith(FENCE)
        in_code ^= fence
        if newline > floor:
            line = _Cut(newline, newline + 1)
            after = _blank_lines_end(text, newline + 1)
            if not in_code and (after > newline + 1 or fence or _line_at(text, after).startswith(FENCE)):
                paragraph = _Cut(newline, after)
        start = newline + 1
    return paragraph, line


def _line_at(text: str, start: int) -> str:
    """The line of ``text`` that starts at ``start``, stripped."""
    end = text.find("\n", start)
    return text[start : end if end != -1 else len(text)].strip()


def _blank_lines_end(text: str, start: int) -> int:
    """Where the run of blank lines starting at ``start`` ends (``start`` when there is none)."""
    end = start
    while (newline := text.find("\n", end)) != -1 and not text[end:newline].strip():
        end = newline + 1
    return end


def _open_fence(piece: str) -> str | None:
    """The opening line (e.g. "```python") of a code block still open at the end of ``piece``, if any."""
    opening: str | None = None
    for line in piece.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            opening = None if opening is not None else stripped
    return opening
