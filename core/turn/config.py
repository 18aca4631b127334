"""What a turn is allowed: default model, system prompt, output and tool-round bounds, windows, time, and
whether the turns that fall out of the window are summarised."""

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
    history_summary: bool = False  # summarise the turns that fall out of the window (settings: on)
    summary_model: str | None = None  # None: the model that answers the turn
    summary_max_tokens: int = 512  # the longest summary
    summary_input_tokens: int = 4000  # most tokens of dropped messages one summary call reads
    router: ModelRouter | None = None  # THREADWISE_ROUTER: cheap or strong model instead of the default
