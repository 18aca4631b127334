"""Slack's mention syntax in `/ai-admin` arguments, made neutral for the core: ``<@U1>`` and ``<@U1|name>``
become ``@U1``; ``<#C1>`` and ``<#C1|general>`` become ``#C1``. The core reads ``@id`` as a user and ``#id``
as a channel of the conversation's platform (and workspace, for a channel)."""

from __future__ import annotations

import re

# a mention that is a word of its own (possibly quoted), as the core read it; the label may hold spaces
_MENTION = re.compile(r"(?<![^\s\"'])<([@#])([A-Za-z0-9]+)(?:\|[^>]*)?>(?![^\s\"'])")


def neutral_args(text: str) -> str:
    """``text`` with every user mention as ``@id`` and every channel mention as ``#id``."""
    return _MENTION.sub(r"\1\2", text)
