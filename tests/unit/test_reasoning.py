"""What of a reasoning model's streamed text is shown and stored: never its ``<think>`` blocks."""

from __future__ import annotations

from core.llm.reasoning import visible_text


def test_think_blocks_are_cut_from_the_answer() -> None:
    assert visible_text("<think>plan</think>\n\nHello", final=True) == "Hello"
    assert visible_text("A <think>x</think>B<think>y</think> C", final=True) == "A B C"
    assert visible_text("no thinking here", final=True) == "no thinking here"


def test_while_streaming_an_open_or_partial_think_tag_shows_nothing_of_it() -> None:
    assert visible_text("<think>still thinking", final=False) == ""
    assert visible_text("Hello <thi", final=False) == "Hello "
    assert visible_text("Hello <thi", final=True) == "Hello <thi"  # it was text after all
    assert visible_text("a < b", final=False) == "a < b"
    assert visible_text("<think>cut off", final=True) == ""
