"""Issue 3's acceptance scenario and the admin CLI, end to end: settings from the environment, the composition
root, real turns against the OpenAI fake, then `threadwise admin …` in a subprocess on the same database."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bots.bootstrap import open_core
from core.domain.errors import QuotaExceeded
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.llm.tokens import REPLY_PRIMING, TokenCounter
from core.money.pricing import MICROS_PER_USD, format_usd
from core.money.reports import CHART_SIZE
from core.settings import load_settings
from core.turn.service import TurnOutcome
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.support import RecordingReplier


def worst_case_usage(body: dict[str, Any]) -> Reply:
    counter = TokenCounter()
    prompt = sum(counter.count_message(body["model"], m, []) for m in body["messages"]) + REPLY_PRIMING
    return Reply(
        text="fine", prompt_tokens=prompt, completion_tokens=body["max_completion_tokens"], chunk_delay=0.01
    )


async def test_thirty_concurrent_turns_against_a_budget_for_five(
    run_cli,
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    # Worst case of one turn: the exact prompt at $0.15/1M plus 1,024 output tokens at $0.60/1M, rounded up.
    system = "You are Threadwise."
    counter = TokenCounter()
    prompt = (
        sum(
            counter.count_message("gpt-4o-mini", m, [])
            for m in ({"role": "system", "content": system}, {"role": "user", "content": "question"})
        )
        + REPLY_PRIMING
    )
    per_turn = -(-(prompt * 150_000 + 1024 * 600_000) // 1_000_000)
    budget = Decimal(per_turn * 5 + per_turn // 2) / MICROS_PER_USD
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_USER_DAILY_BUDGET_USD": str(budget),
        "THREADWISE_SYSTEM_PROMPT": system,
        "THREADWISE_USER_RATE_LIMIT": "off",
        "THREADWISE_TOOLS": "none",  # the arithmetic above is for one plain round (no tool definitions)
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fake_openai.responder = worst_case_usage
    user = ChatUser("slack", "U0ADA", "ada")
    repliers = [RecordingReplier() for _ in range(30)]
    async with open_core(load_settings(env_file=None)) as core:
        outcomes = await asyncio.gather(
            *(
                core.turns.handle(
                    IncomingMessage(
                        key=ConversationKey("slack", "T1", "C1", f"17000000{i:02d}.000100"),
                        user=user,
                        text="question",
                        event_id=f"C1:17000000{i:02d}.000100",
                        received_at=datetime.now(UTC),
                    ),
                    repliers[i],
                )
                for i in range(30)
            )
        )
    assert outcomes.count(TurnOutcome.ANSWERED) == 5
    refusals = [r.errors[0] for r in repliers if r.errors]
    assert len(refusals) == 25 and all(isinstance(e, QuotaExceeded) for e in refusals)
    assert all(e.user_message.startswith("Your daily budget of") for e in refusals)

    chart, table = tmp_path / "out.png", tmp_path / "out.csv"
    result = await run_cli(
        "admin",
        "report",
        "--by",
        "user",
        "--period",
        "today",
        "--chart",
        str(chart),
        "--csv",
        str(table),
        env=env,
    )
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [(r["group"], r["calls"]) for r in rows] == [("slack:U0ADA", "5")]
    assert Decimal(rows[0]["cost_usd"]) * MICROS_PER_USD == 5 * per_turn
    assert f"{format_usd(5 * per_turn)} total, " in result.out.splitlines()[0]
    assert Image.open(chart).size == CHART_SIZE


async def test_admin_cli_quota_ban_and_errors(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    set_quota = await run_cli(
        "admin",
        "quota",
        "set",
        "--scope",
        "user",
        "--subject",
        "slack:U1",
        "--period",
        "day",
        "--usd",
        "2.50",
    )
    assert set_quota.code == 0 and "set: user slack:U1 per day: $2.50" in set_quota.out
    shown = await run_cli("admin", "quota", "show", env={"THREADWISE_CHANNEL_MONTHLY_BUDGET_USD": "40"})
    assert shown.out.splitlines() == [
        "user slack:U1 per day: $2.50",
        "channel (default) per month: $40.00  (default from settings)",
    ]
    cleared = await run_cli(
        "admin", "quota", "clear", "--scope", "user", "--subject", "slack:U1", "--period", "day"
    )
    assert cleared.code == 0 and "override removed" in cleared.out

    banned = await run_cli("admin", "ban", "discord:42", "--for", "2h", "--reason", "spam")
    assert banned.code == 0 and banned.out.startswith("banned discord:42 until ")
    listed = await run_cli("admin", "bans")
    assert "discord:42" in listed.out and "spam" in listed.out
    assert (await run_cli("admin", "unban", "discord:42")).out.strip() == "unbanned discord:42"

    bad = await run_cli(
        "admin", "quota", "set", "--scope", "channel", "--subject", "C1", "--period", "day", "--usd", "1"
    )
    assert bad.code == 2 and "platform:workspace_id:channel_id" in bad.err and "Traceback" not in bad.err
    bad_period = await run_cli("admin", "report", "--period", "fortnight")
    assert bad_period.code == 2 and "Unknown period" in bad_period.err
    far = await run_cli("admin", "report", "--period", "2024-01-01..9999-12-31")
    assert far.code == 2 and "9999-12-30" in far.err and "Traceback" not in far.err + far.out
