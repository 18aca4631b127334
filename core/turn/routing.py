"""Automatic model choice (``THREADWISE_ROUTER=<cheap>,<strong>``, off by default).

It picks the model of a turn whose conversation has none of its own (no `/ai model`) and whose channel's
persona names none. The rule, on the new message alone:

* **strong** when the text is longer than ``long_chars`` characters (``THREADWISE_ROUTER_LONG_CHARS``, 600),
  or contains a fenced code block (```), or has at least ``CODE_LINES`` (3) lines that look like code
  (``def``/``class``/``import``/``function``/``SELECT`` … at the start, or ending in ``;``, ``{`` or ``}``),
  or carries a file that is not an image;
* **cheap** otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.domain.types import IncomingMessage

CODE_LINES = 3
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |function |const |let |var |return |public |private |"
    r"#include|SELECT |INSERT |UPDATE |DELETE |CREATE |for ?\(|if ?\(|while ?\()"
    r"|[;{}]\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ModelRouter:
    cheap: str
    strong: str
    long_chars: int = 600

    def choose(self, message: IncomingMessage) -> str:
        return self.strong if needs_strong_model(message, self.long_chars) else self.cheap


def needs_strong_model(message: IncomingMessage, long_chars: int) -> bool:
    text = message.text
    if len(text) > long_chars or "```" in text:
        return True
    if any(not attachment.mime.startswith("image/") for attachment in message.attachments):
        return True
    code = 0
    for line in text.splitlines():
        if _CODE_LINE.search(line):
            code += 1
            if code >= CODE_LINES:
                return True
    return False
