"""Turn guards for redaction and prompt-injection signals (DESIGN.md §3 step 4), each audited."""

from __future__ import annotations

import dataclasses
import logging

from core.errors import ContentBlocked
from core.injection import detect_injection
from core.moderation import Decision, ModerationAudit
from core.redaction import Redactor
from core.types import IncomingMessage, attached_text

log = logging.getLogger(__name__)


class RedactionGuard:
    """Replaces secrets and personal data in the user's text before it is moderated, sent or stored.

    Everything after this guard (moderation endpoint, model, history, audit) sees only the redacted text.
    """

    def __init__(self, redactor: Redactor, audit: ModerationAudit) -> None:
        self._redactor = redactor
        self._audit = audit

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        counts: dict[str, int] = {}

        def redact(text: str) -> str:
            result = self._redactor.redact(text)
            for found in result.redactions:
                counts[found.kind] = counts.get(found.kind, 0) + found.count
            return result.text

        text = redact(message.text)
        attachments = []
        for attachment in message.attachments:  # attached text files (code, logs) are redacted the same way
            content = attached_text(attachment)
            if content is not None:
                attachment = dataclasses.replace(attachment, data=redact(content).encode("utf-8"))
            attachments.append(attachment)
        if not counts:
            return message
        kinds = [f"{kind}x{count}" if count > 1 else kind for kind, count in counts.items()]
        redacted = dataclasses.replace(message, text=text, attachments=tuple(attachments))
        await self._audit.record(redacted, "input", Decision("redact"), redactions=kinds)
        log.info("redacted %s in %s", ", ".join(kinds), message.event_id)
        return redacted


class InjectionGuard:
    """Flags prompt-injection attempts in the audit; refuses the turn only when the policy says ``block``.

    The signals never grant anything: admin rights come from the platform identity alone.
    """

    def __init__(self, audit: ModerationAudit, *, block: bool = False) -> None:
        self._audit = audit
        self._block = block

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        signals = detect_injection(message.all_text())
        if not signals:
            return message
        kinds = tuple(dict.fromkeys(f"injection/{signal.kind}" for signal in signals))
        action = "block" if self._block else "flag"
        await self._audit.record(message, "input", Decision(action, kinds), content=message.all_text())
        log.warning("prompt-injection signals %s in %s (%s)", ", ".join(kinds), message.event_id, action)
        if self._block:
            raise ContentBlocked(
                "I can't act on that: it looks like an attempt to change my instructions.",
                detail=", ".join(kinds),
            )
        return message
