"""Tool results are cut to the room the budget reservation planned for one tool round."""

from __future__ import annotations

from core.domain.ports import ToolResult
from core.llm.tokens import TokenCounter
from core.turn.fitting import TRUNCATED, fit_results, tool_wire

MODEL = "gpt-4o-mini"


def size(counter: TokenCounter, call_id: str, content: str) -> int:
    return counter.count_message(MODEL, tool_wire(call_id, content), [])


def test_results_that_fit_stay_whole() -> None:
    counter = TokenCounter()
    results = [ToolResult("a", "small"), ToolResult("b", "also small")]

    assert fit_results(counter, MODEL, results, 1000) == ["small", "also small"]


def test_a_large_result_is_cut_to_what_the_small_ones_leave() -> None:
    counter = TokenCounter()
    small = ToolResult("a", "42")
    large = ToolResult("b", "word " * 5000)
    room = 300

    fitted = fit_results(counter, MODEL, [large, small], room)

    assert fitted[1] == "42"  # in the order of the calls, the small one untouched
    assert fitted[0].endswith(TRUNCATED) and fitted[0].startswith("word word")
    total = size(counter, "b", fitted[0]) + size(counter, "a", fitted[1])
    assert room - 10 <= total <= room


def test_two_large_results_share_the_room() -> None:
    counter = TokenCounter()
    results = [ToolResult("a", "alpha " * 3000), ToolResult("b", "beta " * 3000)]
    room = 400

    fitted = fit_results(counter, MODEL, results, room)

    sizes = [size(counter, r.call_id, text) for r, text in zip(results, fitted, strict=True)]
    assert all(text.endswith(TRUNCATED) for text in fitted)
    assert sum(sizes) <= room and abs(sizes[0] - sizes[1]) <= 2
