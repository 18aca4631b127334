"""What a command answers, before any platform's syntax: a short document the adapters render.

The smallest model that says every reply of `/ai …` and `/ai-admin …`:

- spans: ``Text`` (words as people type them; each platform shows them as it shows typed text), ``Code``
  (a command, a model or file name) and ``Emphasis`` (a lead-in such as "Threadwise" or "Moderation log");
- blocks, one under the other: ``Paragraph`` (spans; its text may hold line breaks), ``Heading`` (a section
  title; a heading after other blocks starts a new section), ``Bullets`` (one item of spans per line) and
  ``Preformatted`` (a table or anything whose alignment matters);
- ``Reply``: the blocks, files, and whether everyone in the conversation sees it or only the caller.

Renderers live with the adapters (bots/slack/render.py, bots/discord/render.py, bots/plain.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.domain.types import Attachment


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Code:
    text: str


@dataclass(frozen=True, slots=True)
class Emphasis:
    text: str


Span = Text | Code | Emphasis


@dataclass(frozen=True, slots=True)
class Paragraph:
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Heading:
    text: str


@dataclass(frozen=True, slots=True)
class Bullets:
    items: tuple[tuple[Span, ...], ...]


@dataclass(frozen=True, slots=True)
class Preformatted:
    text: str


Block = Paragraph | Heading | Bullets | Preformatted


@dataclass(frozen=True, slots=True)
class Reply:
    blocks: tuple[Block, ...]
    attachments: tuple[Attachment, ...] = ()
    public: bool = False  # False: only the caller should see it (ephemeral)


def line(*spans: Span | str) -> Paragraph:
    """A paragraph from spans; a ``str`` is plain text."""
    return Paragraph(tuple(Text(span) if isinstance(span, str) else span for span in spans))


def lines(text: str) -> tuple[Paragraph, ...]:
    """Plain text of several lines as one paragraph per line."""
    return tuple(line(row) for row in text.split("\n"))


def say(*spans: Span | str, public: bool = False) -> Reply:
    """A reply of one paragraph."""
    return Reply((line(*spans),), public=public)


def codes(names: Sequence[str], separator: str = ", ") -> tuple[Span, ...]:
    """``a``, ``b``, ``c`` as code spans with plain separators."""
    spans: list[Span] = []
    for index, name in enumerate(names):
        if index:
            spans.append(Text(separator))
        spans.append(Code(name))
    return tuple(spans)


def stack(blocks: tuple[Block, ...], render: Callable[[Block], str]) -> str:
    """Rendered blocks one under the other, for every renderer alike: a heading after other blocks starts a
    new section (a blank line before it)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading) and out:
            out.append("")
        out.append(render(block))
    return "\n".join(out)
