"""Command replies (core/commands/results) as text: one walk over the blocks and spans, and per platform only
how each kind of block and span is marked up (``Markup``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.commands.results import Block, Bullets, Code, Heading, Paragraph, Reply, Span, Text, stack

Mark = Callable[[str], str]


def _as_is(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Markup:
    text: Mark = _as_is  # words as people type them
    code: Mark = _as_is
    emphasis: Mark = _as_is
    heading: Mark = _as_is
    preformatted: Mark = _as_is  # a table or other fixed-width text
    bullet: str = "• "

    def render(self, reply: Reply) -> str:
        """The text of ``reply`` (files and visibility are the caller's)."""
        return self.blocks(reply.blocks)

    def blocks(self, blocks: tuple[Block, ...]) -> str:
        return stack(blocks, self._block)

    def spans(self, spans: tuple[Span, ...] | Span) -> str:
        if not isinstance(spans, tuple):
            return self._span(spans)
        return "".join(self._span(span) for span in spans)

    def _block(self, block: Block) -> str:
        if isinstance(block, Paragraph):
            return self.spans(block.spans)
        if isinstance(block, Heading):
            return self.heading(block.text)
        if isinstance(block, Bullets):
            return "\n".join(self.bullet + self.spans(item) for item in block.items)
        return self.preformatted(block.text)

    def _span(self, span: Span) -> str:
        if isinstance(span, Text):
            return self.text(span.text)
        if isinstance(span, Code):
            return self.code(span.text)
        return self.emphasis(span.text)
