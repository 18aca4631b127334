"""The ledger of one tool-heavy turn: "what is 2**10 and what time is it in Tokyo? then draw it".

The OpenAI fake (tests/fakes/openai_api.py) scripts the model: round 1 calls ``calculator`` and
``current_time`` together, round 2 calls ``generate_image``, round 3 answers. The turn runs through the
composed core (as `threadwise serve` builds it) on a fresh SQLite database with a daily budget set, so the
reservation and the ledger are the real ones; token counts are the fake's. Prints the reply, the usage rows
and the tool calls.

Run from the repository root:  python -m bench.tool_turn
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if not os.environ.get("TIKTOKEN_CACHE_DIR") and (REPO.parent / "shared" / "tiktoken").is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(REPO.parent / "shared" / "tiktoken")

from sqlalchemy import select  # noqa: E402

from bots.bootstrap import open_core  # noqa: E402
from core.db.models import ToolCallRecord, UsageRecord  # noqa: E402
from core.domain.types import ChatUser, ConversationKey, IncomingMessage  # noqa: E402
from core.settings import load_settings  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI, Reply, ToolCallSpec  # noqa: E402
from tests.support import RecordingReplier  # noqa: E402


async def main() -> None:
    async with FakeOpenAI() as fake:
        folder = tempfile.mkdtemp()
        os.environ.update(
            {
                "OPENAI_API_KEY": "test-key",
                "OPENAI_BASE_URL": fake.base_url,
                "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/ledger.db",
                "THREADWISE_USER_DAILY_BUDGET_USD": "1",
                "THREADWISE_LOG_LEVEL": "WARNING",
            }
        )
        fake.script(
            Reply(
                tool_calls=[
                    ToolCallSpec("calculator", '{"expression": "2**10"}'),
                    ToolCallSpec("current_time", '{"timezone": "Asia/Tokyo"}'),
                ]
            ),
            Reply(tool_calls=[ToolCallSpec("generate_image", '{"prompt": "Tokyo at night, 1024 windows"}')]),
            Reply(text="2**10 = 1024; it is evening in Tokyo, and here is a picture."),
        )
        async with open_core(load_settings(None)) as core:
            replier = RecordingReplier()
            key = ConversationKey("slack", "T1", "C1", "1700000000.000100")
            question = "what is 2**10 and what time is it in Tokyo? then draw it"
            user = ChatUser("slack", "U0ADA", "ada")
            message = IncomingMessage(key, user, question, "C1:1700000000.000100", datetime.now(UTC))
            await core.turns.handle(message, replier)
            attached = sum(1 for kind, _ in replier.events if kind == "attach")
            print(f"reply: {replier.finished} ({attached} attachment)")
            async with core.database.reader() as session:
                print("usage_records:")
                print(
                    f"  {'id':>2} {'kind':5} {'model':12} {'input':>6} {'cached':>6} {'output':>6} "
                    f"{'images':>6} {'cost µ$':>8}"
                )
                for row in (await session.execute(select(UsageRecord).order_by(UsageRecord.id))).scalars():
                    print(
                        f"  {row.id:>2} {row.kind:5} {row.model:12} {row.input_tokens:>6} "
                        f"{row.cached_tokens:>6} {row.output_tokens:>6} {row.images:>6} {row.cost_micros:>8}"
                    )
                print("tool_calls:")
                calls = await session.execute(select(ToolCallRecord).order_by(ToolCallRecord.id))
                for call in calls.scalars():
                    print(f"  {call.tool:15} {call.outcome:5} {call.duration_ms:>5} ms  {call.arguments}")


if __name__ == "__main__":
    asyncio.run(main())
