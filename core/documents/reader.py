"""``DocumentReader``: a document's text for the model, read off the event loop and cut to an allowance.

Each file is parsed in a worker thread (``asyncio.to_thread``), at most ``parallel`` at a time, within bounds
(characters collected, pages, seconds; zip-based files checked before they unpack). The text is then cut to
``max_tokens`` tokens of the conversation's model, counted exactly with the TokenCounter, and a line saying
where and why it was cut is added for the model; the user gets the same news as ``partial``. A file that
cannot be read gets a ``problem`` instead ("it is encrypted"), never an exception.

The text becomes a text attachment (``text/plain``) of the incoming message, so the turn's guards redact,
screen for injection and moderate it like the message, and the turn stores it as a text part of the user
message (history replays it; its tokens are counted once, with that message).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.documents import delimited, markdown_text, pdf, slides, spreadsheet, webpage, word
from core.documents.extracted import Bounds, Extracted, Stop, Unreadable
from core.documents.formats import DocumentFormat
from core.documents.packages import PackageLimits
from core.domain.types import Attachment, ConversationKey
from core.llm.tokens import TokenCounter

log = logging.getLogger(__name__)

MAX_CHARS = 90_000  # what one document may add (the turn inlines at most 100,000 characters of a file)
CHARS_PER_TOKEN = 8  # text collected per token of allowance: more than any prose needs, so tokens decide

ModelOf = Callable[[ConversationKey], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_tokens: int = 8_000  # THREADWISE_DOCUMENT_MAX_TOKENS: the most text one file adds to a message
    max_pages: int = 500  # pages or slides read of one file
    max_seconds: float = 30.0  # parsing time of one file (checked between pages)
    parallel: int = 2  # files parsed at once in this process
    package: PackageLimits = field(default_factory=PackageLimits)


@dataclass(frozen=True, slots=True)
class DocumentResult:
    name: str
    attachment: Attachment | None  # the text for the model; None when the file could not be read
    problem: str | None = None  # why not: completes "I couldn't read report.pdf: …"
    partial: str | None = None  # what was read of a file cut short: completes "I read only part of …: …"


class DocumentReader:
    def __init__(
        self,
        counter: TokenCounter,
        limits: DocumentLimits | None = None,
        *,
        default_model: str,
        model_of: ModelOf | None = None,
    ) -> None:
        self._counter = counter
        self.limits = limits or DocumentLimits()
        self._default_model = default_model
        self._model_of = model_of
        self._slots = asyncio.Semaphore(self.limits.parallel)

    async def read(
        self, name: str, kind: DocumentFormat, data: bytes, key: ConversationKey | None = None
    ) -> DocumentResult:
        """The text of ``data`` (a ``kind`` file named ``name``), cut to the allowance for the model of the
        conversation of ``key``; never raises for what the file holds."""
        model = await self._model(key)
        async with self._slots:
            return await asyncio.to_thread(self.read_now, name, kind, data, model)

    def read_now(self, name: str, kind: DocumentFormat, data: bytes, model: str) -> DocumentResult:
        """``read`` in the calling thread (a worker thread: this takes as long as the file needs)."""
        limits = self.limits
        bounds = Bounds(
            max_chars=min(MAX_CHARS, limits.max_tokens * CHARS_PER_TOKEN),
            max_pages=limits.max_pages,
            seconds=limits.max_seconds,
        )
        try:
            extracted = _parse(kind, name, data, bounds, limits.package)
        except Unreadable as exc:
            return DocumentResult(name, None, problem=exc.reason)
        except Exception as exc:  # a parser's own failure on a damaged file: the user is told, never a crash
            log.info("could not parse a %s file: %s: %s", kind.value, type(exc).__name__, exc)
            return DocumentResult(name, None, problem=f"it is damaged or not {kind.label}")
        return self._fit(name, extracted, model)

    def _fit(self, name: str, extracted: Extracted, model: str) -> DocumentResult:
        text = extracted.render()
        over = self._counter.count_text(model, text) > self.limits.max_tokens
        reason = self._reason(Stop.FULL if over else extracted.stopped, extracted.unit)
        if reason is None:
            return DocumentResult(name, Attachment(name, "text/plain", text.encode("utf-8")))
        note = f"[{name} is cut here: {reason}.]"
        if over:
            room = self.limits.max_tokens - self._counter.count_text(model, "\n\n" + note)
            text = self._counter.truncate(model, text, max(0, room)).rstrip()
        shown = f"{text}\n\n{note}" if text else note
        partial = f"{self._where(extracted, text, model)}; {reason}"
        return DocumentResult(name, Attachment(name, "text/plain", shown.encode("utf-8")), partial=partial)

    def _reason(self, stopped: Stop | None, unit: str) -> str | None:
        limits = self.limits
        if stopped is Stop.FULL:
            return f"the rest is over the {limits.max_tokens:,}-token allowance for one file"
        if stopped is Stop.PAGES:
            return f"at most {limits.max_pages:,} {unit or 'page'}s of a file are read"
        if stopped is Stop.TIME:
            return f"reading it took longer than {limits.max_seconds:g} seconds"
        return None

    def _where(self, extracted: Extracted, kept: str, model: str) -> str:
        """How far the kept text goes: "up to page 12 of 40", or "its first 7,900 tokens"."""
        if not extracted.unit:
            return f"its first {self._counter.count_text(model, kept):,} tokens"
        last, position = 0, 0
        for section in extracted.sections:
            if position >= len(kept):
                break
            last = section.number
            position += len(f"{section.marker}\n{section.text}") + 2
        return f"up to {extracted.unit} {last:,} of {extracted.total:,}"

    async def _model(self, key: ConversationKey | None) -> str:
        if key is None or self._model_of is None:
            return self._default_model
        try:
            return await self._model_of(key)
        except Exception:
            log.warning("could not look up the model of %s; documents are counted for the default", key)
            return self._default_model


def _parse(kind: DocumentFormat, name: str, data: bytes, bounds: Bounds, package: PackageLimits) -> Extracted:
    if kind is DocumentFormat.PDF:
        return pdf.extract(data, bounds)
    if kind is DocumentFormat.DOCX:
        return word.extract(data, bounds, package)
    if kind is DocumentFormat.PPTX:
        return slides.extract(data, bounds, package)
    if kind is DocumentFormat.XLSX:
        return spreadsheet.extract(data, bounds, package)
    if kind is DocumentFormat.CSV:
        return delimited.extract(data, bounds, name)
    if kind is DocumentFormat.HTML:
        return webpage.extract(data, bounds)
    return markdown_text.extract(data, bounds)
