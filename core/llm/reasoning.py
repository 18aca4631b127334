"""Reasoning models' thinking, kept from users and from the stored history.

``<think>…</think>`` blocks in the answer's text are cut (an unclosed one hides the rest; a partial ``<think``
at the end of the stream so far is held back until it is known). ``reasoning_content`` deltas are never read
as text. Their tokens are still in the usage the API reports, so they are priced like any output."""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


def visible_text(raw: str, *, final: bool) -> str:
    """``raw`` without its thinking; ``final``: the stream has ended (nothing more is held back)."""
    if "<" not in raw:
        return raw
    out: list[str] = []
    index = 0
    while True:
        start = raw.find(OPEN, index)
        if start < 0:
            tail = raw[index:]
            if not final:
                for size in range(min(len(OPEN) - 1, len(tail)), 0, -1):
                    if OPEN.startswith(tail[-size:]):
                        tail = tail[:-size]
                        break
            out.append(tail)
            break
        out.append(raw[index:start])
        end = raw.find(CLOSE, start + len(OPEN))
        if end < 0:
            break  # still thinking (or cut off while thinking): nothing more to show
        index = end + len(CLOSE)
    shown = "".join(out)
    return shown.lstrip() if raw.lstrip().startswith(OPEN) else shown
