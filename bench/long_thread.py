"""A 300-turn thread past its window: does it still answer a question about its first turn, within budget?

The composed core (as `threadwise serve` builds it, THREADWISE_HISTORY_SUMMARY at its default) on a fresh
SQLite database, a daily budget set and the history capped at 1,000 tokens, against the OpenAI fake
(tests/fakes/openai_api.py, its token counts). The fake model answers "ok", and as the summariser (told apart
by its system prompt) keeps the launch code when it reads it; the last question is answered from whatever
the request contains. Prints the summary calls made, the last answer, the last summarised request and its
summary request, and the last turn that summarised: its summary request, its answer request and its
usage_records rows (the summary call and the answer call), then the day's spend against the budget.

Run from the repository root:  python -m bench.long_thread [--turns 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if not os.environ.get("TIKTOKEN_CACHE_DIR") and (REPO.parent / "shared" / "tiktoken").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(REPO.parent / "shared" / "tiktoken")

from sqlalchemy import func, select  # noqa: E402

from bots.bootstrap import open_core  # noqa: E402
from core.db.models import UsageRecord  # noqa: E402
from core.domain.types import ChatUser, ConversationKey, IncomingMessage  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.turn.summary import SUMMARY_SYSTEM  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI, Reply, Script  # noqa: E402
from tests.support import RecordingReplier  # noqa: E402

FACT = "the launch code is ZEBRA-42"
BUDGET_USD = "1"
SUMMARY_MODEL = "gpt-4.1-mini"  # default: the conversation's; another one here tells its ledger rows apart


class Model:
    def __init__(self) -> None:
        self.summaries: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> Script:
        text = json.dumps(body["messages"])
        if body["messages"][0]["content"] == SUMMARY_SYSTEM:
            self.summaries.append(body)
            keeps = FACT if "ZEBRA-42" in text else "nothing to keep"
            return Reply(text=f"Summary {len(self.summaries)}: {keeps}.")
        self.answers.append(body)
        if "What was the launch code" in body["messages"][-1]["content"]:
            return Reply(text=f"As you said at the start, {FACT}." if "ZEBRA-42" in text else "I don't know.")
        return Reply(text=f"ok, noted item {len(self.answers)}.")


def message(text: str, index: int) -> IncomingMessage:
    return IncomingMessage(
        key=ConversationKey("console", "W1", "C1", "long"),
        user=ChatUser("console", "U1", "user"),
        text=text,
        event_id=f"e{index}",
        received_at=datetime.now(UTC),
    )


def short(messages: list[dict[str, Any]], width: int = 110) -> str:
    lines = []
    shown = messages if len(messages) <= 7 else [*messages[:4], {"role": "…", "content": "…"}, *messages[-2:]]
    for m in shown:
        content = str(m.get("content"))
        lines.append(f"  {m['role']:9} {content[:width]!r}{' …' if len(content) > width else ''}")
    return "\n".join(lines)


async def last_ledger_id(core: Any) -> int:
    async with core.database.reader() as session:
        return int(await session.scalar(select(func.max(UsageRecord.id))) or 0)


async def main(turns: int) -> None:
    model = Model()
    async with FakeOpenAI() as fake:
        fake.responder = model
        folder = tempfile.mkdtemp()
        os.environ.update(
            {
                "OPENAI_API_KEY": "test-key",
                "OPENAI_BASE_URL": fake.base_url,
                "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/long.db",
                "THREADWISE_USER_DAILY_BUDGET_USD": BUDGET_USD,
                "THREADWISE_HISTORY_MAX_TOKENS": "1000",
                "THREADWISE_SUMMARY_MAX_TOKENS": "128",
                "THREADWISE_SUMMARY_MODEL": SUMMARY_MODEL,
                "THREADWISE_USER_RATE_LIMIT": "off",
                "THREADWISE_LOG_LEVEL": "WARNING",
            }
        )
        async with open_core(load_settings(None)) as core:
            notes = 0
            # the last turn that made a summary call: (its index, ledger ids before and after it)
            summarised: tuple[int, int, int] | None = None
            for index in range(turns):
                calls_before = len(model.summaries)
                before = await last_ledger_id(core)
                if index == 0:
                    text = f"Please remember: {FACT}."
                elif index == turns - 1:
                    text = "What was the launch code I gave you at the very start?"
                else:
                    text = f"Turn {index}: note item {index}, a routine status update, nothing special."
                replier = RecordingReplier()
                await core.turns.handle(message(text, index), replier)
                assert not replier.errors, replier.errors
                notes += sum("now summarised" in t for t in replier.finished)
                if len(model.summaries) > calls_before:
                    summarised = (index, before, await last_ledger_id(core))
                    summarised_requests = (model.summaries[-1], model.answers[-1])
            answer = replier.finished[-1]
            async with core.database.reader() as session:
                rows = (await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars().all()
                spent = await session.scalar(select(func.sum(UsageRecord.cost_micros)))
    print(f"{turns} turns, {len(model.summaries)} summary calls, the note shown {notes} time(s)")
    print(f"last answer: {answer!r}")
    print("the last (summarised) request:\n" + short(model.answers[-1]["messages"]))
    print("the last summary request:\n" + short(model.summaries[-1]["messages"]))
    if summarised is not None:
        index, before, after = summarised
        summary_request, answer_request = summarised_requests
        print(f"\nturn {index + 1}, the last one that summarised:")
        print(
            f"its summary request ({summary_request['model']}, max_tokens "
            f"{summary_request.get('max_completion_tokens') or summary_request.get('max_tokens')}):\n"
            + short(summary_request["messages"], width=700)
        )
        print(f"its answer request ({answer_request['model']}):\n" + short(answer_request["messages"]))
        print("its usage_records rows (id, model, kind, input, cached, output tokens, micro-USD):")
        for row in rows:
            if before < row.id <= after:
                print(
                    f"  {row.id:4} {row.model:13} {row.kind:5} {row.input_tokens:6} {row.cached_tokens:4}",
                    f"{row.output_tokens:5} {row.cost_micros:6}",
                )
    print(f"ledger: {len(rows)} rows, spent ${(spent or 0) / 1e6:.4f} of the ${BUDGET_USD} daily budget")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=300)
    asyncio.run(main(parser.parse_args().turns))
