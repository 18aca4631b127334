"""Splitting replies into Discord messages: at most 2,000 characters, cut at line breaks, code blocks closed
and reopened so each message renders on its own."""

from __future__ import annotations

from bots.discord.chunks import MESSAGE_LIMIT, split_message
from bots.discord.identity import thread_name, without_mention


def test_short_text_is_one_message() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("x" * MESSAGE_LIMIT) == ["x" * MESSAGE_LIMIT]


def test_long_prose_is_cut_at_line_breaks() -> None:
    lines = [f"Line {n}: " + ("lorem ipsum " * 8).strip() for n in range(40)]
    text = "\n".join(lines)
    pieces = split_message(text)
    assert len(pieces) > 1
    assert all(len(piece) <= MESSAGE_LIMIT for piece in pieces)
    assert "\n".join(pieces) == text  # nothing lost, every cut on a line break
    assert all(piece.split("\n")[-1] in lines for piece in pieces)


def test_a_code_block_cut_in_two_is_closed_and_reopened_with_its_language() -> None:
    code = "\n".join(f"value_{n} = compute({n})  # step {n}" for n in range(120))
    text = f"Here you go:\n```python\n{code}\n```\nThat is all."
    pieces = split_message(text)
    assert len(pieces) >= 2
    assert all(len(piece) <= MESSAGE_LIMIT for piece in pieces)
    assert pieces[0].endswith("```") and pieces[0].count("```") == 2
    assert pieces[1].startswith("```python\n")
    assert all(piece.count("```") % 2 == 0 for piece in pieces)
    body = [line for piece in pieces for line in piece.split("\n") if line.startswith("value_")]
    assert body == code.split("\n")


def test_text_without_breaks_is_cut_hard() -> None:
    pieces = split_message("a" * 4500)
    assert [len(piece) for piece in pieces] == [2000, 2000, 500]


def test_thread_names_and_mentions() -> None:
    assert thread_name("  What is a monad?\nmore") == "What is a monad?"
    long = thread_name("word " * 50)
    assert len(long) <= 100 and long.endswith("…")
    assert thread_name("") == "Threadwise conversation"
    assert without_mention("<@123> hi <@!123>", 123) == "hi"
    assert without_mention("<@999> hi", 123) == "<@999> hi"
