"""The redaction guard: secrets and personal data replaced before anything else sees the message."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from core.domain.types import IncomingMessage, attached_text
from core.guards.audit import Decision, ModerationAudit
from core.guards.redactor import Redacted, Redactor

log = logging.getLogger(__name__)

# Redaction costs about 0.2-0.4 ms per KB (python -m bench.redaction: ~22 ms per 100 KB of ASCII, ~40 ms with
# folding tricks, on an idle machine): a text this long takes a few milliseconds; a longer one goes to a
# worker thread.
ON_LOOP_MAX_CHARS = 20_000


async def redact_off_loop(redactor: Redactor, text: str) -> Redacted:
    """``redactor.redact(text)``, in a worker thread when ``text`` is longer than ``ON_LOOP_MAX_CHARS`` (a
    large tool result or attached file would otherwise hold the event loop for tens of milliseconds)."""
    if len(text) <= ON_LOOP_MAX_CHARS:
        return redactor.redact(text)
    return await asyncio.to_thread(redactor.redact, text)


class RedactionGuard:
    """Replaces secrets and personal data in the user's text before it is moderated, sent or stored.

    Everything after this guard (moderation endpoint, model, history, audit) sees only the redacted text.
    """

    def __init__(self, redactor: Redactor, audit: ModerationAudit) -> None:
        self._redactor = redactor
        self._audit = audit

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        counts: dict[str, int] = {}

        async def redact(text: str) -> str:
            result = await redact_off_loop(self._redactor, text)  # large texts in a worker thread
            for found in result.redactions:
                counts[found.kind] = counts.get(found.kind, 0) + found.count
            return result.text

        text = await redact(message.text)
        attachments = []
        for attachment in message.attachments:  # attached text files (code, logs) are redacted the same way
            content = attached_text(attachment)
            if content is not None:
                attachment = dataclasses.replace(attachment, data=(await redact(content)).encode("utf-8"))
            attachments.append(attachment)
        if not counts:
            return message
        kinds = [f"{kind}x{count}" if count > 1 else kind for kind, count in counts.items()]
        redacted = dataclasses.replace(message, text=text, attachments=tuple(attachments))
        await self._audit.record(redacted, "input", Decision("redact"), redactions=kinds)
        log.info("redacted %s in %s", ", ".join(kinds), message.event_id)
        return redacted
