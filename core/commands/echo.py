"""What a reply may repeat of what someone typed: a bounded piece of it.

A refusal that quotes its input ("`…` is not available here") must fit in one chat message however long the
input was (Discord takes 2,000 characters, a 6,000-character option is allowed; Slack's escaping can make a
text four times longer), so quotes are cut, with an ellipsis, to ``ECHO_CHARS``.
"""

from __future__ import annotations

ECHO_CHARS = 100  # a model, user, channel or amount as typed; far longer is no such thing
CAPTION_CHARS = 300  # a prompt repeated under its answer (an image's caption)


def echoed(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` as a reply quotes it: at most ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
