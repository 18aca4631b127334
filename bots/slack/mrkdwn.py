"""Markdown (as models write it) to Slack mrkdwn, and how long mrkdwn is split into messages Slack shows whole
(the splitting itself is bots/splitting.py).

Slack's mrkdwn is not Markdown: ``*bold*``, ``_italic_``, ``~strike~``, ``<url|text>`` links, no headings,
no tables, and ``&``, ``<``, ``>`` must be escaped. Code blocks and inline code are kept (escaped only).
"""

from __future__ import annotations

import re

from bots.splitting import Splitting

MESSAGE_LIMIT = 3_900  # Slack shows about 4,000 characters of a message's text before "Show more"/truncation

_FENCE = re.compile(r"^(\s*)(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_QUOTE = re.compile(r"^(\s*)>\s?(.*)$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"&lt;(https?://[^\s&]+(?:&amp;[^\s&]+)*)&gt;")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x01"
_SLOT = "\x02{}\x03"
_SLOT_RE = re.compile("\x02(\\d+)\x03")


def escape(text: str) -> str:
    """Slack's three control characters as entities (it shows them as the characters again)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert ``markdown`` line by line; fenced code keeps its content and loses only the language tag."""
    out: list[str] = []
    lines = markdown.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(2)
            block = ["```"]
            index += 1
            while index < len(lines) and not lines[index].strip().startswith(marker):
                block.append(escape(lines[index]))
                index += 1
            block.append("```")  # an unclosed fence (mid-stream) is closed so Slack renders it as code
            index += 1
            out.append("\n".join(block))
            continue
        if _TABLE_ROW.match(line):  # Slack has no tables: keep them aligned in a code block
            rows = []
            while index < len(lines) and _TABLE_ROW.match(lines[index]):
                rows.append(escape(lines[index].strip()))
                index += 1
            out.append("\n".join(["```", *rows, "```"]))
            continue
        out.append(_line(line))
        index += 1
    return "\n".join(out)


def _line(line: str) -> str:
    if _RULE.match(line):
        return "──────────"
    heading = _HEADING.match(line)
    if heading:
        title = _BOLD.sub(r"\2", heading.group(1))
        return f"*{_inline(title)}*" if title else ""
    quote = _QUOTE.match(line)
    if quote:
        return f"{quote.group(1)}>{' ' if quote.group(2) else ''}{_inline(quote.group(2))}"
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


def _inline(text: str) -> str:
    """Inline formatting of one line; code spans and links are set aside first so nothing inside changes."""
    slots: list[str] = []

    def keep(value: str) -> str:
        slots.append(value)
        return _SLOT.format(len(slots) - 1)

    text = _INLINE_CODE.sub(lambda m: keep(f"`{escape(m.group(2))}`"), text)
    text = _IMAGE.sub(lambda m: keep(_link(m.group(2), m.group(1) or m.group(2))), text)
    text = _LINK.sub(lambda m: keep(_link(m.group(2), m.group(1))), text)
    text = escape(text)
    text = _AUTOLINK.sub(lambda m: keep(f"<{m.group(1)}>"), text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = text.replace(_BOLD_MARK, "*")
    while _SLOT_RE.search(text):  # slots may nest (a code span inside a link text)
        text = _SLOT_RE.sub(lambda m: slots[int(m.group(1))], text)
    return text


def _link(url: str, label: str) -> str:
    label = _INLINE_CODE.sub(r"\2", label).replace("|", "¦")
    url = escape(url)
    return f"<{url}>" if label == url else f"<{url}|{escape(label)}>"


def splitting(limit: int = MESSAGE_LIMIT) -> Splitting:
    """Slack's way: whole paragraphs and code blocks per message where they fit, words cut cleanly."""
    return Splitting(limit, paragraphs=True, trim_spaces=True)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """``text`` as Slack messages of at most ``limit`` characters."""
    return splitting(limit).split(text)
