"""Turn guards for redaction and prompt-injection signals (DESIGN.md §3 step 4), each audited."""

from __future__ import annotations

import dataclasses
import logging

from core.errors import ContentBlocked
from core.injection import detect_injection
from core.moderation import Decision, ModerationAudit
from core.redaction import Redactor
from core.types import IncomingMessage

log = logging.getLogger(__name__)


class RedactionGuard:
    """Replaces secrets and personal data in the user's text before it is moderated, sent or stored.

    Everything after this guard (moderation endpoint, model, history, audit) sees only the redacted text.
    """

    def __init__(self, redactor: Redactor, audit: ModerationAudit) -> None:
        self._redactor = redactor
        self._audit = audit

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        result = self._redactor.redact(message.text)
        if not result.changed:
            return message
        kinds = [f"{r.kind}x{r.count}" if r.count > 1 else r.kind for r in result.redactions]
        redacted = dataclasses.replace(message, text=result.text)
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
        signals = detect_injection(message.text)
        if not signals:
            return message
        kinds = tuple(dict.fromkeys(f"injection/{signal.kind}" for signal in signals))
        action = "block" if self._block else "flag"
        await self._audit.record(message, "input", Decision(action, kinds), content=message.text)
        log.warning("prompt-injection signals %s in %s (%s)", ", ".join(kinds), message.event_id, action)
        if self._block:
            raise ContentBlocked(
                "I can't act on that: it looks like an attempt to change my instructions.",
                detail=", ".join(kinds),
            )
        return message
