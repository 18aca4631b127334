"""A long reply as consecutive messages a platform shows whole (Slack ~4,000 characters, Discord 2,000).

Each piece takes as much text as fits and is cut at the best boundary in reach: the last paragraph break
(a blank line outside code), else the last line break, else the last space past half the piece, else hard.
A cut inside a fenced code block closes the fence at the end of the piece and reopens it, with its language,
at the start of the next one, so every message renders on its own. A cut depends only on the text up to it,
so earlier pieces stay the same while text is appended (streaming).
"""

from __future__ import annotations

from typing import NamedTuple

FENCE = "```"
_CLOSE = "\n" + FENCE


class _Cut(NamedTuple):
    end: int  # the first piece is text[:end]
    resume: int  # the rest starts at text[resume:] (the separator between them is dropped)


def split_message(text: str, limit: int) -> list[str]:
    """``text`` as pieces of at most ``limit`` characters (see the module docstring)."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest, reopen = text, ""
    while rest:
        rest = reopen + rest
        if len(rest) <= limit:
            pieces.append(rest)
            break
        piece, rest, reopen = _first_piece(rest, limit, len(reopen))
        pieces.append(piece)
    return [piece for piece in pieces if piece.strip()] or [text[:limit]]


def _first_piece(text: str, limit: int, floor: int) -> tuple[str, str, str]:
    """The first piece of ``text``, the rest, and the fence line the rest must reopen ("" if none).

    ``floor`` is how much of ``text`` is a reopened fence: a cut must take more than that, so pieces advance.
    """
    cut = _cut(text, limit, floor)
    fence = _open_fence(text[: cut.end])
    if fence is not None:  # leave room to close the fence
        cut = _cut(text, limit - len(_CLOSE), floor)
        fence = _open_fence(text[: cut.end])
    piece, rest = text[: cut.end].rstrip(), text[cut.resume :]
    if fence is None:
        return piece, rest, ""
    return piece + _CLOSE, rest, fence + "\n"


def _cut(text: str, room: int, floor: int) -> _Cut:
    """Where the first piece of at most ``room`` characters ends: paragraph, line, space, or hard."""
    paragraph, line = _breaks(text, room, floor)
    if paragraph is not None:
        return paragraph
    if line is not None:
        return line
    space = text.rfind(" ", 0, room + 1)
    if space > max(room // 2, floor):
        return _Cut(space, len(text) - len(text[space:].lstrip(" ")))
    return _Cut(room, room)


def _breaks(text: str, room: int, floor: int) -> tuple[_Cut | None, _Cut | None]:
    """The last paragraph break (outside code) and the last line break of ``text`` in (floor, room]."""
    paragraph: _Cut | None = None
    line: _Cut | None = None
    in_code = False
    start = 0
    while (newline := text.find("\n", start, room + 1)) != -1:
        if text[start:newline].strip().startswith(FENCE):
            in_code = not in_code
        if newline > floor:
            line = _Cut(newline, newline + 1)
            after = _blank_lines_end(text, newline + 1)
            if after > newline + 1 and not in_code:
                paragraph = _Cut(newline, after)
        start = newline + 1
    return paragraph, line


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
