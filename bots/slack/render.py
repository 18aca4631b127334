"""Command replies (core/commands/results) as Slack mrkdwn.

Plain text is what people typed or the core wrote in words: it goes through ``to_mrkdwn`` like a model's
answer (so ``&``, ``<``, ``>`` are escaped and Markdown in it reads as it always has). Emphasis and headings
show in italics, code in backticks, tables in a code block.
"""

from __future__ import annotations

from bots.slack.mrkdwn import escape, to_mrkdwn
from core.commands.results import (
    Block,
    Bullets,
    Code,
    Heading,
    Paragraph,
    Reply,
    Span,
    Text,
    stack,
)


def render(reply: Reply) -> str:
    """The text of ``reply`` (files and visibility are the caller's)."""
    return render_blocks(reply.blocks)


def render_blocks(blocks: tuple[Block, ...]) -> str:
    return stack(blocks, _block)


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return _spans(block.spans)
    if isinstance(block, Heading):
        return f"_{escape(block.text)}_"
    if isinstance(block, Bullets):
        return "\n".join(f"• {_spans(item)}" for item in block.items)
    return f"```\n{escape(block.text)}\n```"


def _spans(spans: tuple[Span, ...]) -> str:
    return "".join(_span(span) for span in spans)


def _span(span: Span) -> str:
    if isinstance(span, Text):
        return to_mrkdwn(span.text)
    if isinstance(span, Code):
        return f"`{escape(span.text)}`"
    return f"_{escape(span.text)}_"
