"""Splitting a reply into Discord messages of at most 2,000 characters, on line or code-block boundaries."""

from __future__ import annotations

MESSAGE_LIMIT = 2000
_FENCE = "```"


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as consecutive messages of at most ``limit`` characters.

    Cuts at the last line break that fits (else the last space, else hard). A cut inside a fenced code block
    closes the fence at the end of the piece and reopens it, with its language, at the start of the next one,
    so every message renders on its own.
    """
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    reopen = ""  # the fence line that opens the code block the previous piece was cut in
    while rest:
        rest = reopen + rest
        if len(rest) <= limit:
            pieces.append(rest)
            break
        room = limit - len(_FENCE) - 1  # leave space to close a fence
        cut = _cut(rest, room)
        piece = rest[:cut]
        fence = _open_fence(piece)
        if fence is None:
            whole = _cut(rest, limit)  # no fence to close: use the full limit
            if _open_fence(rest[:whole]) is None:
                cut, piece = whole, rest[:whole]
        rest = rest[cut:]
        if rest.startswith("\n"):
            rest = rest[1:]
        if fence is not None:
            piece = piece.rstrip("\n") + "\n" + _FENCE
            reopen = fence + "\n"
        else:
            reopen = ""
        pieces.append(piece.rstrip() if piece.strip() else piece)
    return [piece for piece in pieces if piece.strip()] or [text[:limit]]


def _cut(text: str, room: int) -> int:
    """Where to cut ``text`` so the first part is at most ``room`` characters."""
    if len(text) <= room:
        return len(text)
    window = text[: room + 1]
    newline = window.rfind("\n")
    if newline > room // 2:
        return newline
    space = window.rfind(" ")
    if space > room // 2:
        return space
    return room


def _open_fence(piece: str) -> str | None:
    """The opening line (e.g. "```python") of a code block still open at the end of ``piece``, if any."""
    opening: str | None = None
    for line in piece.split("\n"):
        stripped = line.strip()
        if stripped.startswith(_FENCE):
            opening = None if opening is not None else stripped
    return opening
