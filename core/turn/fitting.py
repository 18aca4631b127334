"""Tool results cut to the room the budget reservation planned for one tool round (DESIGN.md §3 step 7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.domain.ports import ToolResult
from core.llm.tokens import TokenCounter

TRUNCATED = "\n[cut: the tool returned more than fits in the conversation]"


def tool_wire(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def fit_results(counter: TokenCounter, model: str, results: Sequence[ToolResult], room: int) -> list[str]:
    """The results' texts, cut so that together they add at most ``room`` tokens to the prompt; small results
    stay whole, large ones share what the small ones leave."""
    sizes = [counter.count_message(model, tool_wire(r.call_id, r.content), []) for r in results]
    if sum(sizes) <= room:
        return [r.content for r in results]
    fitted: dict[int, str] = {}
    remaining = room
    order = sorted(range(len(results)), key=lambda i: sizes[i])
    for position, index in enumerate(order):
        share = remaining // (len(order) - position)
        fitted[index] = _cut(counter, model, results[index], sizes[index], share)
        remaining -= min(sizes[index], share)
    return [fitted[i] for i in range(len(results))]


def _cut(counter: TokenCounter, model: str, result: ToolResult, size: int, share: int) -> str:
    if size <= share:
        return result.content
    framing = counter.count_message(model, tool_wire(result.call_id, TRUNCATED), [])
    return counter.truncate(model, result.content, max(0, share - framing)) + TRUNCATED
