"""Discord's mention syntax in `/ai-admin` arguments, made neutral for the core: ``<@1>`` and ``<@!1>``
(a nickname mention) become ``1``; ``<#1>`` becomes ``1``. The core reads a bare id in the conversation's
platform (and guild, for a channel). Role mentions (``<@&1>``) are no user and stay as they are."""

from __future__ import annotations

import re

# a mention that is a word of its own (possibly quoted), as the core read it
_MENTION = re.compile(r"(?<![^\s\"'])<(?:@!?|#)([0-9A-Za-z]+)>(?![^\s\"'])")


def neutral_args(text: str) -> str:
    """``text`` with every user or channel mention replaced by the bare id."""
    return _MENTION.sub(r"\1", text)
