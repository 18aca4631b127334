"""Prometheus metrics of the core, registered on a registry the composition root owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.turns = Counter(
            "threadwise_turns",
            "Turns handled, by platform and outcome",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "threadwise_turn_seconds",
            "Wall time of a turn, from hand-over to persisted reply",
            ["platform"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80),
        )
        self.llm_tokens = Counter(
            "threadwise_llm_tokens",
            "Tokens reported by the model API",
            ["model", "kind"],
            registry=self.registry,
        )
        self.llm_calls = Counter(
            "threadwise_llm_calls", "Chat completion calls, by model", ["model"], registry=self.registry
        )
