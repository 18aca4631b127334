"""Feedback on answers end to end: real turns against the OpenAI fake, votes through the answer buttons'
service, then `threadwise admin report --by feedback`, `admin export` and `admin forget` in a subprocess on
the same database."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.bootstrap import open_core
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.settings import load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.support import RecordingReplier

ALICE = ChatUser("slack", "U0ALICE", "alice")
BOB = ChatUser("slack", "U0BOB", "bob")


async def test_feedback_report_export_and_forget(
    run_cli,  # type: ignore[no-untyped-def]
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_MODELS": "gpt-4o-mini,gpt-4o",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fake_openai.script(Reply(text="One."), Reply(text="Two."), Reply(text="Three."))
    answers: list[int] = []
    async with open_core(load_settings(env_file=None)) as core:
        assert core.buttons is not None
        for number, (user, model) in enumerate(
            [(ALICE, "gpt-4o-mini"), (BOB, "gpt-4o-mini"), (ALICE, "gpt-4o")]
        ):
            replier = RecordingReplier()
            message = IncomingMessage(
                key=ConversationKey("slack", "T1", "C1", f"1700000000.00000{number}"),
                user=user,
                text=f"question {number}",
                event_id=f"C1:1700000000.00000{number}",
                received_at=datetime.now(UTC),
            )
            await core.turns.handle(message, replier, model=model)
            assert replier.answer_id is not None
            answers.append(replier.answer_id)
        await core.buttons.vote(answers[0], ALICE, up=True)
        await core.buttons.vote(answers[1], BOB, up=False)
        await core.buttons.vote(answers[2], ALICE, up=False)
        await core.buttons.vote(answers[2], ALICE, up=True)  # changed her mind: one vote, up

    table = tmp_path / "feedback.csv"
    report = await run_cli("admin", "report", "--by", "feedback", "--csv", str(table), env=env)
    assert report.code == 0, report.err
    assert report.out.splitlines()[0].startswith("Feedback by model, today")
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert sorted((r["model"], r["up"], r["down"]) for r in rows) == [
        ("gpt-4o", "1", "0"),
        ("gpt-4o-mini", "1", "1"),
    ]

    exported = await run_cli("admin", "export", "slack:U0ALICE", env=env)
    assert exported.code == 0, exported.err
    mine = json.loads(exported.out)["feedback"]
    assert sorted((row["model"], row["vote"]) for row in mine) == [("gpt-4o", 1), ("gpt-4o-mini", 1)]

    forgot = await run_cli("admin", "forget", "slack:U0ALICE", "--yes", env=env)
    assert forgot.code == 0, forgot.err
    after = await run_cli("admin", "report", "--by", "feedback", "--csv", str(table), env=env)
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert after.code == 0 and [(r["model"], r["up"], r["down"]) for r in rows] == [("gpt-4o-mini", "0", "1")]
