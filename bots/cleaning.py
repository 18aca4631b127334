"""Text from a platform made safe to encode and store, at the adapter's edge (Slack and Discord payloads)."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """``text`` safe to encode and store: lone surrogates become U+FFFD, NULs are dropped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", "")


def clean_all(value: Any) -> None:
    """Every string inside a parsed JSON value cleaned in place (iteratively: depth costs no stack)."""
    stack = [value]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in list(pairs):
            if isinstance(child, str):
                item[key] = clean(child)
            elif isinstance(child, dict | list):
                stack.append(child)
