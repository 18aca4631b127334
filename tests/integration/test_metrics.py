"""`/metrics` after a few turns shows every family on-call needs (issue 17), with the process collectors, for
the Discord adapter as `threadwise serve` composes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from core.metrics import Metrics
from tests.fakes.openai_api import Reply, ToolCallSpec
from tests.integration.discord_harness import running_bot

FAMILIES = {
    "threadwise_turns": "counter",
    "threadwise_turn_seconds": "histogram",
    "threadwise_turns_in_flight": "gauge",
    "threadwise_first_token_seconds": "histogram",
    "threadwise_llm_calls": "counter",
    "threadwise_llm_call_seconds": "histogram",
    "threadwise_llm_tokens": "counter",
    "threadwise_cost_usd": "counter",
    "threadwise_budget_refusals": "counter",
    "threadwise_moderation_decisions": "counter",
    "threadwise_tool_calls": "counter",
    "threadwise_tool_call_seconds": "histogram",
    "threadwise_platform_api_calls": "counter",
    "threadwise_history_cache": "counter",
    "process_resident_memory_bytes": "gauge",
    "python_info": "gauge",
}


async def test_every_family_is_exported_and_counts_what_happened(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as bot:
        fake = bot.discord
        dm = fake.dm_channel(fake.owner)
        bot.openai.script(
            Reply(tool_calls=[ToolCallSpec("calculator", '{"expression": "6*7"}')]), Reply("It is 42.")
        )
        await fake.message_create(dm, "what is 6*7?")
        await fake.wait_for(lambda: [m for m in fake.bot_messages(dm) if m.content == "It is 42."])
        bot.openai.script(Reply("Still 42."))
        await fake.message_create(dm, "and again?")
        await fake.wait_for(lambda: [m for m in fake.bot_messages(dm) if m.content == "Still 42."])
    body = generate_latest(bot.core.metrics.registry).decode()  # the adapter drained: both turns ended

    for family, kind in FAMILIES.items():
        exported = f"{family}_total" if kind == "counter" else family
        assert f"# TYPE {exported} {kind}" in body, family
    samples = body.splitlines()

    def value(prefix: str) -> float:
        found = [float(line.rsplit(" ", 1)[1]) for line in samples if line.startswith(prefix)]
        assert found, prefix
        return sum(found)

    assert value('threadwise_turns_total{outcome="answered",platform="discord",reason=""}') == 2
    assert value('threadwise_llm_calls_total{model="gpt-4o-mini",status="ok"}') == 3
    assert value('threadwise_first_token_seconds_count{model="gpt-4o-mini"}') == 3
    assert value('threadwise_tool_calls_total{outcome="ok",tool="calculator"}') == 1
    assert value('threadwise_cost_usd_total{model="gpt-4o-mini"}') > 0
    assert value('threadwise_moderation_decisions_total{action="allow"') >= 2
    assert (
        value('threadwise_platform_api_calls_total{method="POST /channels/:id/messages",platform="discord"')
        >= 2
    )
    assert value('threadwise_history_cache_total{result="hit"}') == 1
    assert value('threadwise_turns_in_flight{platform="discord"}') == 0


def test_the_grafana_dashboard_charts_every_family_and_nothing_else() -> None:
    dashboard = json.loads((Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json").read_text())
    body = generate_latest(Metrics().registry).decode()
    samples = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE")}
    samples |= {f"{name}_bucket" for name in samples}  # a histogram is queried by its buckets
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:threadwise|process)_[a-z_]+)", target["expr"])
    }
    assert queried <= samples
    ours = {family for family in FAMILIES if family.startswith("threadwise_")}
    charted = {name.removesuffix("_total").removesuffix("_bucket") for name in queried}
    assert ours <= charted
