"""Where a start-up went (issue 14): `threadwise serve` logs one "ready" line naming its phases, from the
interpreter's start to ready, each with its seconds and the resident memory it added, so an operator (and
bench/startup.py) can tell a slow database from slow token tables without a profiler."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bots.bootstrap import serving
from bots.timeline import Timeline
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.integration.test_slack_adapter import settings_for


async def test_serve_logs_where_its_start_up_went(
    tmp_path: Path, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="threadwise")
    timeline = Timeline()
    async with FakeSlack() as fake:
        settings = settings_for(tmp_path, fake_openai, fake)
        async with serving(settings, ["slack"], timeline=timeline):
            [ready] = [record for record in caplog.records if record.getMessage().startswith("ready in")]
    fields = getattr(ready, "fields", {})
    phases, memory = fields["startup"], fields["startup_mb"]
    assert next(iter(phases)) == "interpreter"
    for phase in ("database", "services", "adapters", "token tables (rest)", "listen", "recovery sweep"):
        assert phases[phase] >= 0.0, phase
    assert list(memory) == list(phases)
    assert float(ready.getMessage().split()[2]) == pytest.approx(sum(phases.values()), abs=0.01)


def test_a_repeated_phase_adds_up() -> None:
    timeline = Timeline()
    timeline.mark("imports")
    timeline.mark("database")
    timeline.mark("imports")
    assert list(timeline.phases()) == ["interpreter", "imports", "database"]
    assert timeline.total() == pytest.approx(sum(timeline.phases().values()), abs=0.005)
