"""Markdown, read as it is written (it is text already; its formatting helps the model)."""

from __future__ import annotations

from core.documents.extracted import Bounds, Extracted, Section, Stop, Unreadable, decode


def extract(data: bytes, bounds: Bounds) -> Extracted:
    text = decode(data).replace("\r\n", "\n").strip()
    if not text:
        raise Unreadable("it has no text")
    kept = bounds.take(text)
    return Extracted("", 0, [Section(0, "", kept)], Stop.FULL if len(kept) < len(text) else None)
