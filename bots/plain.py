"""Command output (core/commands/results) as plain text for a terminal: no markup at all; a heading after
other blocks starts a new section, list items start with ``- ``."""

from __future__ import annotations

from core.commands.results import Block, Bullets, Heading, Paragraph, Reply, Span, stack


def render(reply: Reply) -> str:
    """The text of ``reply`` (files and visibility are the caller's)."""
    return render_blocks(reply.blocks)


def render_blocks(blocks: tuple[Block, ...]) -> str:
    return stack(blocks, _block)


def render_spans(spans: tuple[Span, ...] | Span) -> str:
    """Spans (or one span) as their words."""
    if not isinstance(spans, tuple):
        return spans.text
    return "".join(span.text for span in spans)


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return render_spans(block.spans)
    if isinstance(block, Heading):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {render_spans(item)}" for item in block.items)
    return block.text
