"""What admins type after `/ai-admin …`, read into values (core/commands/parsing)."""

from __future__ import annotations

import pytest

from core.commands.parsing import (
    ModerationFilter,
    is_duration,
    parse_moderation_filter,
    parse_report,
    parse_thresholds,
    tool_names,
    words_of,
)
from core.domain.errors import BadInput
from core.domain.types import ConversationKey

KEY = ConversationKey("slack", "T1", "C1", "1.2")


def test_words_are_split_like_a_shell() -> None:
    assert words_of('U1 2h "spamming links"') == ["U1", "2h", "spamming links"]
    with pytest.raises(BadInput, match="I couldn't read that"):
        words_of("'unclosed")


def test_report_period_and_grouping_in_any_order() -> None:
    assert parse_report([]) == ("today", "user")
    assert parse_report(["by", "Model", "last-7-days"]) == ("last-7-days", "model")
    assert parse_report(["month", "by"]) == ("by", "user")  # a dangling `by` is read as the period


def test_moderation_filter() -> None:
    assert parse_moderation_filter([], KEY) == ModerationFilter(20, None, None)
    assert parse_moderation_filter(["5", "action", "Block", "user", "U1"], KEY) == ModerationFilter(
        5, "slack:U1", "block"
    )
    with pytest.raises(BadInput, match="I don't know `sideways` here"):
        parse_moderation_filter(["sideways"], KEY)


def test_thresholds_apply_over_the_current_ones() -> None:
    current = {"violence": {"flag": 0.2}}
    assert parse_thresholds(["flag", "0.3", "violence", "block", "0.5"], current) == {
        "flag": 0.3,
        "violence": {"flag": 0.2, "block": 0.5},
    }
    assert current == {"violence": {"flag": 0.2}}
    with pytest.raises(BadInput, match="Write thresholds like"):
        parse_thresholds(["violence"], {})
    with pytest.raises(BadInput, match="`x` is not a number"):
        parse_thresholds(["flag", "x"], {})


def test_tool_names_and_durations() -> None:
    assert tool_names(["calculator,current_time", "fetch_url"]) == ["calculator", "current_time", "fetch_url"]
    assert tool_names(["None"]) == [] and tool_names([]) == []
    assert is_duration("30m") and is_duration("7D") and not is_duration("spam")
