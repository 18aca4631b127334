"""Command replies (core/commands/results) as Discord markdown.

Plain text goes out as written (Discord reads Markdown in it, as in anything typed); emphasis and headings
are ``*italic*``, code in backticks, tables in a code block.
"""

from __future__ import annotations

from core.commands.results import Block, Bullets, Code, Heading, Paragraph, Reply, Span, Text, stack


def render(reply: Reply) -> str:
    """The text of ``reply`` (files and visibility are the caller's)."""
    return render_blocks(reply.blocks)


def render_blocks(blocks: tuple[Block, ...]) -> str:
    return stack(blocks, _block)


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return _spans(block.spans)
    if isinstance(block, Heading):
        return f"*{block.text}*"
    if isinstance(block, Bullets):
        return "\n".join(f"• {_spans(item)}" for item in block.items)
    return f"```\n{block.text}\n```"


def _spans(spans: tuple[Span, ...]) -> str:
    return "".join(_span(span) for span in spans)


def _span(span: Span) -> str:
    if isinstance(span, Text):
        return span.text
    if isinstance(span, Code):
        return f"`{span.text}`"
    return f"*{span.text}*"
