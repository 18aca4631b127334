"""Discord's mention syntax in `/ai-admin` arguments, made neutral for the core: ``<@1>`` and ``<@!1>``
(a nickname mention) become ``@1``; ``<#1>`` becomes ``#1``. The core reads ``@id`` as a user and ``#id``
as a channel of the conversation's platform (and guild). Role mentions (``<@&1>``) stay as they are."""

from __future__ import annotations

import re

# a mention that is a word of its own (possibly quoted), as the core read it
_MENTION = re.compile(r"(?<![^\s\"'])<(?:(@)!?|(#))([0-9A-Za-z]+)>(?![^\s\"'])")


def neutral_args(text: str) -> str:
    """``text`` with every user mention as ``@id`` and every channel mention as ``#id``."""
    return _MENTION.sub(lambda found: (found.group(1) or found.group(2)) + found.group(3), text)
