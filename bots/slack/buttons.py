"""The Block Kit of an answer's buttons: Stop while it streams, 👍 / 👎 and Retry under the finished answer,
and the answer's text as section blocks (a message with blocks shows its blocks, not its ``text``).

Buttons carry ``action_id`` ``answer:<verb>`` and the answer's id (its claim id) as ``value``; clicks are
routed by that prefix (bots/slack/actions.py)."""

from __future__ import annotations

from typing import Any

PREFIX = "answer"  # action_id prefix of these buttons: answer:stop, answer:up, answer:down, answer:retry
STOP_BLOCK = "answer-stop"
ANSWER_BLOCK = "answer-buttons"
SECTION_LIMIT = 3_000  # characters of a section block's text


def _button(verb: str, text: str, answer_id: int, *, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{PREFIX}:{verb}",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": str(answer_id),
    }
    if style:
        button["style"] = style
    return button


def stop_actions(answer_id: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": STOP_BLOCK,
        "elements": [_button("stop", ":black_square_for_stop: Stop", answer_id, style="danger")],
    }


def answer_actions(answer_id: int) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": ANSWER_BLOCK,
        "elements": [
            _button("up", ":thumbsup:", answer_id),
            _button("down", ":thumbsdown:", answer_id),
            _button("retry", ":arrows_counterclockwise: Retry", answer_id),
        ],
    }


def sections(mrkdwn: str) -> list[dict[str, Any]]:
    """``mrkdwn`` as section blocks of at most SECTION_LIMIT characters (cut at a line break if near)."""
    blocks: list[dict[str, Any]] = []
    rest = mrkdwn
    while rest:
        piece = rest[:SECTION_LIMIT]
        if len(rest) > SECTION_LIMIT:
            cut = piece.rfind("\n", SECTION_LIMIT // 2)
            piece = piece[: cut + 1] if cut > 0 else piece
        rest = rest[len(piece) :]
        if piece.strip():
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    return blocks


def marked(blocks: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """A message's blocks with the answer's buttons replaced by a context line (e.g. "Retried by …")."""
    kept = [block for block in blocks if block.get("block_id") not in (ANSWER_BLOCK, STOP_BLOCK)]
    return [*kept, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}]
