"""Markdown as models write it, shown as Slack mrkdwn, and long replies cut where a reader would cut them."""

from __future__ import annotations

from bots.slack.events import plain_text
from bots.slack.mrkdwn import split_message, to_mrkdwn


def test_emphasis_links_headings_and_lists() -> None:
    markdown = (
        "# Plan **now**\n"
        "Some **bold**, *italic*, _also italic_, ~~gone~~ and [the docs](https://x.org/a_b?c=1&d=2).\n"
        "- first\n"
        "  * nested with `code *stays*`\n"
        "1. numbered\n"
        "> quoted **text**\n"
        "---"
    )
    assert to_mrkdwn(markdown).split("\n") == [
        "*Plan now*",
        "Some *bold*, _italic_, _also italic_, ~gone~ and <https://x.org/a_b?c=1&amp;d=2|the docs>.",
        "• first",
        "  • nested with `code *stays*`",
        "1. numbered",
        "> quoted *text*",
        "──────────",
    ]


def test_code_blocks_are_kept_and_special_characters_escaped() -> None:
    markdown = "Use <b> & co:\n```python\nif a < b and **kwargs:\n\n    pass\n```\nafter"
    assert to_mrkdwn(markdown) == (
        "Use &lt;b&gt; &amp; co:\n```\nif a &lt; b and **kwargs:\n\n    pass\n```\nafter"
    )


def test_an_unclosed_fence_mid_stream_is_closed_and_tables_become_code() -> None:
    assert to_mrkdwn("```\nprint(1)") == "```\nprint(1)\n```"
    assert to_mrkdwn("| a | b |\n|---|---|\n| 1 | 2 |") == "```\n| a | b |\n|---|---|\n| 1 | 2 |\n```"


def test_short_text_is_one_message() -> None:
    assert split_message("hello", 100) == ["hello"]


def test_long_text_is_cut_at_paragraphs_and_prefixes_stay_stable_while_streaming() -> None:
    paragraphs = [f"p{n} " + "x" * 30 for n in range(6)]
    text = "\n\n".join(paragraphs)
    pieces = split_message(text, 80)
    assert pieces == [
        "\n\n".join(paragraphs[0:2]),
        "\n\n".join(paragraphs[2:4]),
        "\n\n".join(paragraphs[4:6]),
    ]
    longer = split_message(text + " and more words", 80)
    assert longer[:2] == pieces[:2]


def test_a_long_code_block_is_cut_at_lines_and_each_piece_is_a_closed_block() -> None:
    code = "```\n" + "\n".join(f"line {n:02d}" for n in range(30)) + "\n```"
    pieces = split_message("intro\n\n" + code, 80)
    assert pieces[0] == "intro"
    assert all(p.startswith("```\n") and p.endswith("\n```") and len(p) <= 80 for p in pieces[1:])
    lines = [line for p in pieces[1:] for line in p.split("\n") if line != "```"]
    assert lines == [f"line {n:02d}" for n in range(30)]


def test_a_line_longer_than_the_limit_is_cut_at_a_space() -> None:
    text = " ".join(["word"] * 50)
    pieces = split_message(text, 60)
    assert all(len(p) <= 60 for p in pieces) and " ".join(pieces) == text


def test_incoming_slack_text_becomes_plain_words() -> None:
    text = "<@U0BOT> compare <https://a.io|A> with <https://b.io> in <#C1|general> &amp; tell <@U2> &lt;3"
    assert (
        plain_text(text, "U0BOT") == "compare A (https://a.io) with https://b.io in #general & tell <@U2> <3"
    )
