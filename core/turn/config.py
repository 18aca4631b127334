"""What a turn is allowed: default model, system prompt, output and tool-round bounds, windows, time."""

from __future__ import annotations

from dataclasses import dataclass

from core.turn.routing import ModelRouter


@dataclass(frozen=True, slots=True)
class TurnConfig:
    default_model: str
    system_prompt: str
    max_output_tokens: int
    max_tool_rounds: int = 4
    history_max_tokens: int | None = None
    context_windows: dict[str, int] | None = None
    fallback_model: str | None = None
    tool_round_tokens: int = 4000  # most tokens the results of one tool round may add to the prompt
    turn_timeout: float | None = 120.0  # seconds a whole turn may take (None: no limit)
    router: ModelRouter | None = None  # THREADWISE_ROUTER: cheap or strong model instead of the default
