"""How a channel's thresholds combine with the server's (per category, tightening wins)."""

from __future__ import annotations

import pytest

from core.guards.moderation import ModerationPolicy, Thresholds
from core.guards.moderation import decide as decide_with

SERVER = ModerationPolicy(Thresholds(0.4, 0.8), {"violence": Thresholds(0.6, 0.95)})


def decide(policy: ModerationPolicy, scores: dict[str, float]) -> str:
    return decide_with(scores, policy).action


def test_a_tighter_channel_applies_to_categories_the_server_tuned() -> None:
    kids = SERVER.with_overrides({"flag": 0.2, "block": 0.3})
    assert decide(kids, {"violence": 0.9}) == "block"  # the server alone would only flag it
    assert decide(SERVER, {"violence": 0.9}) == "flag"
    assert decide(kids, {"hate": 0.25}) == "flag"


def test_a_looser_channel_does_not_undo_the_servers_tuning() -> None:
    relaxed = SERVER.with_overrides({"flag": 0.9, "block": 0.99})
    assert relaxed.thresholds("violence") == Thresholds(0.6, 0.95)
    assert relaxed.thresholds("hate") == Thresholds(0.9, 0.99)


def test_a_named_category_is_set_as_given() -> None:
    policy = SERVER.with_overrides({"violence": {"block": 0.5}})
    assert policy.thresholds("violence") == Thresholds(0.6, 0.5)


@pytest.mark.parametrize("raw", [{"gore": {"block": 0.1}}, {"flag": 1.5}, {"block": "high"}, {"violence": 3}])
def test_bad_overrides_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SERVER.with_overrides(raw)
