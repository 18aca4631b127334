"""Prometheus metrics of the service, registered on a registry the composition root owns (with the process
and platform collectors), served at ``/metrics``. Names say what they count; label values are bounded sets
(platforms, outcomes, reasons, models, tools, API methods), never user or conversation ids."""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        if registry is None:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        self.turns = Counter(
            "threadwise_turns",
            "Turns handled, by platform and outcome; reason: why a failed turn failed or was refused",
            ["platform", "outcome", "reason"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "threadwise_turn_seconds",
            "Wall time of a turn, from hand-over to persisted reply",
            ["platform"],
            registry=self.registry,
            buckets=LATENCY,
        )
        self.turns_in_flight = Gauge(
            "threadwise_turns_in_flight",
            "Turns being handled now (waiting for their turn in the conversation included)",
            ["platform"],
            registry=self.registry,
        )
        self.first_token_seconds = Histogram(
            "threadwise_first_token_seconds",
            "Time from sending a model request to its first streamed text or tool call",
            ["model"],
            registry=self.registry,
            buckets=LATENCY,
        )
        self.llm_calls = Counter(
            "threadwise_llm_calls",
            "Chat completion calls, by model and status (ok, or the error kind)",
            ["model", "status"],
            registry=self.registry,
        )
        self.llm_call_seconds = Histogram(
            "threadwise_llm_call_seconds",
            "Duration of a chat completion call, retries included",
            ["model"],
            registry=self.registry,
            buckets=LATENCY,
        )
        self.llm_tokens = Counter(
            "threadwise_llm_tokens",
            "Tokens reported by the model API",
            ["model", "kind"],
            registry=self.registry,
        )
        self.cost = Counter(
            "threadwise_cost_usd",
            "What model calls cost, in US dollars, priced from the price table",
            ["model"],
            registry=self.registry,
        )
        self.budget_refusals = Counter(
            "threadwise_budget_refusals",
            "Turns refused because a budget could not cover them, by the budget's scope",
            ["scope"],
            registry=self.registry,
        )
        self.moderation = Counter(
            "threadwise_moderation_decisions",
            "Moderation and redaction decisions, by action and category",
            ["action", "category"],
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "threadwise_tool_calls",
            "Tool calls, by tool and outcome",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.tool_seconds = Histogram(
            "threadwise_tool_call_seconds",
            "Duration of a tool call",
            ["tool"],
            registry=self.registry,
            buckets=LATENCY,
        )
        self.platform_calls = Counter(
            "threadwise_platform_api_calls",
            "Calls to a chat platform's API, by platform, method and HTTP status",
            ["platform", "method", "status"],
            registry=self.registry,
        )
        self.history_cache = Counter(
            "threadwise_history_cache",
            "History window reads, by result (hit: served from memory; miss: read from the database)",
            ["result"],
            registry=self.registry,
        )
