"""What the model is sent from stored messages, and which of them fit the token budget."""

from __future__ import annotations

import base64
from itertools import count
from typing import Any

import pytest

from core.turn.history import HistoryEntry, trim, wire_message
from tests.fakes.openai_api import png_bytes

# --- wire_message ----------------------------------------------------------------------------------------


def test_user_text_is_a_plain_string() -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]

    assert wire_message("user", parts) == {"role": "user", "content": "Hello, world"}


def test_user_with_image_is_a_list_of_text_and_data_url() -> None:
    png = png_bytes(3, 2)
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg-bytes"
    parts = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "attachment": 1},
        {"type": "image", "attachment": 0, "detail": "low"},
    ]

    message = wire_message("user", parts, [("image/png", png), ("image/jpeg", jpeg)])

    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {
                "type": "image_url",
                "image_url": {
                    "url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"),
                    "detail": "auto",
                },
            },
            {
                "type": "image_url",
                "image_url": {
                    "url": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                    "detail": "low",
                },
            },
        ],
    }
    # The data URL carries exactly the stored bytes.
    url = message["content"][2]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == png


def test_assistant_with_tool_calls_and_no_text_has_null_content() -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}]

    message = wire_message("assistant", [], tool_calls=calls)

    assert message == {"role": "assistant", "content": None, "tool_calls": calls}


def test_assistant_text_without_tool_calls_has_no_tool_calls_key() -> None:
    message = wire_message("assistant", [{"type": "text", "text": "Paris."}])

    assert message == {"role": "assistant", "content": "Paris."}


def test_assistant_with_text_and_tool_calls_keeps_both() -> None:
    calls = [{"id": "call_9", "type": "function", "function": {"name": "search", "arguments": '{"q":"x"}'}}]

    message = wire_message("assistant", [{"type": "text", "text": "Let me check."}], tool_calls=calls)

    assert message == {"role": "assistant", "content": "Let me check.", "tool_calls": calls}


def test_tool_result_carries_its_call_id() -> None:
    message = wire_message("tool", [{"type": "text", "text": "16.8"}], tool_call_id="call_1")

    assert message == {"role": "tool", "tool_call_id": "call_1", "content": "16.8"}


# --- trim ------------------------------------------------------------------------------------------------

_ids = count(1)


def entry(role: str, tokens: int, **wire: Any) -> HistoryEntry:
    return HistoryEntry(message_id=next(_ids), role=role, wire={"role": role, **wire}, tokens=tokens)


def roles(entries: list[HistoryEntry]) -> list[str]:
    return [e.role for e in entries]


@pytest.fixture
def two_turns() -> list[HistoryEntry]:
    # turn 1: 10 + 5 = 15 tokens; turn 2: 7 + 3 = 10 tokens; 25 in all.
    return [entry("user", 10), entry("assistant", 5), entry("user", 7), entry("assistant", 3)]


def test_everything_kept_when_budget_equals_the_sum(two_turns: list[HistoryEntry]) -> None:
    assert trim(two_turns, 25) == two_turns


def test_one_token_short_drops_the_oldest_turn(two_turns: list[HistoryEntry]) -> None:
    assert trim(two_turns, 24) == two_turns[2:]


def test_newest_turn_exactly_at_budget_is_kept(two_turns: list[HistoryEntry]) -> None:
    assert trim(two_turns, 10) == two_turns[2:]
    assert trim(two_turns, 9) == []


def test_budget_zero_keeps_nothing(two_turns: list[HistoryEntry]) -> None:
    assert trim(two_turns, 0) == []
    assert trim([], 0) == []


def test_tool_call_and_its_results_are_dropped_together() -> None:
    history = [
        entry("user", 10),
        entry("assistant", 20, tool_calls=[{"id": "a"}, {"id": "b"}]),
        entry("tool", 30, tool_call_id="a"),
        entry("tool", 30, tool_call_id="b"),
        entry("assistant", 5),
        entry("user", 4),
        entry("assistant", 6),
    ]
    newest_turn = history[5:]

    # 10 tokens fit the newest turn; 1 token short of the whole history still cannot keep the tool call:
    # it, its results and the user message that started them go as one.
    for budget in (10, 50, 104):
        kept = trim(history, budget)
        assert kept == newest_turn, budget
    assert trim(history, 105) == history


def test_kept_tool_call_keeps_all_its_results() -> None:
    history = [
        entry("user", 1),
        entry("assistant", 1),
        entry("user", 2),
        entry("assistant", 3, tool_calls=[{"id": "x"}]),
        entry("tool", 4, tool_call_id="x"),
        entry("assistant", 1),
    ]

    kept = trim(history, 10)

    assert kept == history[2:]
    assert roles(kept) == ["user", "assistant", "tool", "assistant"]


def test_orphan_messages_before_the_first_user_message_are_dropped() -> None:
    # A window cut mid-turn starts with the results of a tool call whose request is not in it.
    history = [
        entry("tool", 2, tool_call_id="gone"),
        entry("assistant", 2),
        entry("user", 3),
        entry("assistant", 3),
    ]

    kept = trim(history, 1_000)

    assert kept == history[2:]
    assert kept[0].role == "user"


def test_history_without_any_user_message_is_empty() -> None:
    history = [entry("assistant", 1, tool_calls=[{"id": "x"}]), entry("tool", 1, tool_call_id="x")]

    assert trim(history, 1_000) == []


def test_trim_keeps_order_and_returns_a_new_list(two_turns: list[HistoryEntry]) -> None:
    kept = trim(two_turns, 100)

    assert [e.message_id for e in kept] == sorted(e.message_id for e in two_turns)
    kept.clear()
    assert len(two_turns) == 4
