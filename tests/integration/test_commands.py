"""The chat command vocabulary (`/ai …`, `/ai-admin …`) on the composed core, as adapters call it."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.bootstrap import Core, open_core
from bots.slack.mentions import neutral_args
from core.commands.parsing import parse_ai_text, parse_amount, scope_subject, user_subject
from core.db.models import AdminAction, UsageRecord
from core.domain.errors import BadInput, ContentBlocked, NotAuthorized
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.llm.images import sniff_image
from core.settings import load_settings
from tests.fakes.openai_api import FakeOpenAI
from tests.loop_probe import LoopProbe
from tests.rendered import slack
from tests.support import RecordingReplier

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
ADA = ChatUser("slack", "U0ADA", "ada")
ADMIN = ChatUser("slack", "U0BOSS", "boss", is_admin=True)  # a workspace admin (the platform says so)
OPERATOR = ChatUser("slack", "U0OPS", "ops")  # listed in THREADWISE_ADMINS


@pytest.fixture
async def core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> AsyncIterator[Core]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_MODELS": "gpt-4o-mini,gpt-4.1-mini",
        "THREADWISE_USER_DAILY_BUDGET_USD": "1",
        "THREADWISE_ADMINS": "slack:U0OPS",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None)) as composed:
        yield composed


async def turn(core: Core, text: str, event: str, user: ChatUser = ADA) -> RecordingReplier:
    replier = RecordingReplier()
    message = IncomingMessage(KEY, user, text, event, datetime.now(UTC))
    await core.turns.handle(message, replier)
    return replier


def test_slack_text_after_ai_is_a_subcommand_or_a_question() -> None:
    assert parse_ai_text("") == ("help", "")
    assert parse_ai_text("usage") == ("usage", "")
    assert parse_ai_text("model  gpt-4.1-mini ") == ("model", "gpt-4.1-mini")
    assert parse_ai_text("Image a red fox") == ("image", "a red fox")
    assert parse_ai_text("why is the sky blue?") == ("ask", "why is the sky blue?")


def test_amounts_and_subjects_as_admins_type_them() -> None:
    assert parse_amount("$2.50") == (Decimal("2.50"), None)
    assert parse_amount("200k tokens") == (None, 200_000)
    assert parse_amount("unlimited") == (None, None)
    with pytest.raises(BadInput):
        parse_amount("lots")
    assert user_subject(neutral_args("<@U0ADA|ada>"), KEY) == "slack:U0ADA"
    assert user_subject("discord:42", KEY) == "discord:42"
    assert scope_subject("channel", neutral_args("<#C9|random>"), KEY) == "slack:T1:C9"
    assert scope_subject("channel", "here", KEY) == "slack:T1:C1"
    assert scope_subject("workspace", "here", KEY) == "slack:T1"


async def test_reset_hides_history_from_the_next_turn(core: Core, fake_openai: FakeOpenAI) -> None:
    assert await slack(core).is_conversation(KEY) is False
    await turn(core, "my name is Ada", "e1")
    assert await slack(core).is_conversation(KEY) is True
    reply = await slack(core).reset(ADA, KEY)
    assert "2 earlier messages" in reply.text and not reply.public
    await turn(core, "what is my name?", "e2")
    last = fake_openai.chat_requests()[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user"]
    assert (await slack(core).reset(ADA, KEY)).text.startswith("Done")  # e2's pair
    assert "nothing to forget" in (await slack(core).reset(ADA, KEY)).text


async def test_model_is_chosen_per_conversation_from_the_allowed_list(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    assert "`gpt-4o-mini`" in (await slack(core).set_model(ADA, KEY, "")).text
    with pytest.raises(BadInput, match="not available"):
        await slack(core).set_model(ADA, KEY, "gpt-5-pro")
    await slack(core).set_model(ADA, KEY, "gpt-4.1-mini")
    await turn(core, "hello", "e1")
    assert fake_openai.chat_requests()[-1]["model"] == "gpt-4.1-mini"
    other = ConversationKey("slack", "T1", "C1", "1700000000.000200")
    assert "`gpt-4o-mini`" in (await slack(core).set_model(ADA, other, "")).text


async def test_usage_shows_spend_and_the_daily_limit(core: Core) -> None:
    await turn(core, "hello", "e1")
    text = (await slack(core).usage(ADA, KEY)).text
    assert "Today: $0.0000" in text and "of $1.00" in text and "This month" in text


async def test_image_is_generated_priced_and_recorded(core: Core, fake_openai: FakeOpenAI) -> None:
    reply = await slack(core).image(ADA, KEY, "a lighthouse at dusk")
    (attachment,) = reply.attachments
    info = sniff_image(attachment.data)
    assert info is not None and (info.mime, info.width, info.height) == ("image/png", 1024, 1024)
    assert reply.public and "$0.042" in reply.text
    async with core.database.reader() as session:
        row = (await session.execute(select(UsageRecord))).scalars().one()
    assert (row.kind, row.images, row.cost_micros, row.user_id) == ("image", 1, 42_000, "U0ADA")
    sent = [r.json for r in fake_openai.requests if r.path == "/v1/images/generations"]
    assert sent[0]["model"] == "gpt-image-1" and sent[0]["size"] == "1024x1024"


async def test_image_prompt_goes_through_moderation(core: Core, fake_openai: FakeOpenAI) -> None:
    fake_openai.moderation_flags = {"gore": {"violence/graphic": 0.97}}
    with pytest.raises(ContentBlocked):
        await slack(core).image(ADA, KEY, "lots of gore")
    assert not [r for r in fake_openai.requests if r.path == "/v1/images/generations"]


async def test_non_admins_are_refused_and_the_refusal_is_recorded(core: Core) -> None:
    attempts = [
        ("quota", "show"),
        ("quota", "set channel here day lots"),  # refused before its arguments are even read
        ("report", "today"),
        ("ban", "<@U0BOB>"),
        ("unban", "<@U0BOB>"),
        ("moderation", ""),
        ("moderation", "policy here flag 7"),
        ("tools", "set here bogus"),
        ("help", ""),
    ]
    for command, args in attempts:
        with pytest.raises(NotAuthorized) as refused:
            await slack(core).admin(ADA, KEY, command, args)
        assert refused.value.user_message == "Only admins can do that."
    async with core.database.reader() as session:
        rows = (await session.execute(select(AdminAction).where(AdminAction.allowed.is_(False)))).scalars()
        assert sorted(row.action for row in rows) == sorted(command for command, _ in attempts)


async def test_a_workspace_admin_manages_only_their_own_workspace(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    elsewhere = ConversationKey("slack", "T2", "C9", "1700000000.000500")
    await turn(core, "spend in T1", "e1")
    other = IncomingMessage(
        elsewhere, ChatUser("slack", "U0ZED", "zed"), "spend in T2", "e2", datetime.now(UTC)
    )
    await core.turns.handle(other, RecordingReplier())

    # allowed: their channels and their workspace
    assert (await slack(core).admin(ADMIN, KEY, "quota", "set channel here day $2")).text.startswith("Set:")
    assert (await slack(core).admin(ADMIN, KEY, "quota", "set workspace here month $50")).text.startswith(
        "Set:"
    )
    report = (await slack(core).admin(ADMIN, KEY, "report", "today by user")).text
    assert "slack:U0ADA" in report and "U0ZED" not in report  # their workspace's spend only
    assert "T1" in report
    # refused: another workspace, users, global limits, bans (they reach every workspace)
    refusals = [
        ("quota", "set channel slack:T2:C9 day $0"),
        ("quota", "set workspace slack:T2 day $0"),
        ("quota", "set user <@U0ADA> day unlimited"),
        ("quota", "set global day $0"),
        ("ban", "<@U0ZED>"),
        ("unban", "<@U0ZED>"),
        ("tools", "set slack:T2:C9 none"),
        ("moderation", "policy slack:T2:C9 flag 0.1"),
    ]
    for command, args in refusals:
        with pytest.raises(NotAuthorized):
            await slack(core).admin(ADMIN, KEY, command, args)
    # an operator sees everything
    everything = (await slack(core).admin(OPERATOR, KEY, "report", "today by user")).text
    assert "slack:U0ADA" in everything and "slack:U0ZED" in everything


async def test_admin_sets_a_quota_in_chat_words_and_it_applies(core: Core) -> None:
    reply = await slack(core).admin(OPERATOR, KEY, "quota", "set user <@U0ADA> day $0.000001")
    assert reply.text == "Set: user slack:U0ADA per day: $0.000001"
    refused = await turn(core, "hello", "e1")
    assert refused.errors and "daily budget" in refused.errors[0].user_message
    shown = (await slack(core).admin(OPERATOR, KEY, "quota", "show user")).text
    assert "user slack:U0ADA per day: $0.000001" in shown and "(default)" in shown
    await slack(core).admin(OPERATOR, KEY, "quota", "clear user <@U0ADA> day")
    assert (await turn(core, "hello again", "e2")).finished


async def test_report_carries_a_chart_and_a_csv(core: Core) -> None:
    await turn(core, "hello", "e1")
    reply = await slack(core).admin(ADMIN, KEY, "report", "today by user")
    chart, table = reply.attachments
    assert chart.mime == "image/png" and sniff_image(chart.data) is not None
    rows = list(csv.reader(io.StringIO(table.data.decode())))
    assert rows[1][0] == "slack:U0ADA"
    assert "slack:U0ADA" in reply.text


async def test_ban_and_unban_from_chat(core: Core) -> None:
    assert (await slack(core).admin(OPERATOR, KEY, "ban", "<@U0ADA> 2h spamming")).text.startswith(
        "Banned slack:U0ADA until"
    )
    assert "spamming" in (await slack(core).admin(OPERATOR, KEY, "ban", "list")).text
    assert (await turn(core, "hello", "e1")).errors
    assert (await slack(core).admin(OPERATOR, KEY, "unban", "<@U0ADA>")).text == "Unbanned slack:U0ADA."
    assert (await turn(core, "hello", "e2")).finished


async def test_moderation_log_lists_recent_decisions_with_filters(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    fake_openai.moderation_flags = {"idiot": {"harassment": 0.5}}
    await turn(core, "you idiot", "e1")
    await turn(core, "write to jane@example.com", "e2")
    everything = (await slack(core).admin(OPERATOR, KEY, "moderation", "")).text
    assert "input flag harassment (harassment 0.50)" in everything
    assert "redacted email" in everything
    flagged = (await slack(core).admin(OPERATOR, KEY, "moderation", "5 action flag user <@U0ADA>")).text
    lines = flagged.splitlines()[1:]  # the echoed answer was flagged too
    assert [line.split()[5:7] for line in lines] == [["output", "flag"], ["input", "flag"]]
    assert "jane@example.com" not in everything


async def test_forget_asks_first_then_erases_the_callers_data(core: Core) -> None:
    await turn(core, "my phone is in my bag", "e1")
    await turn(core, "something from bob", "e2", user=ChatUser("slack", "U0BOB", "bob"))
    asked = await slack(core).forget(ADA, KEY, "")
    assert "2 messages in 1 conversations" in asked.text and "/ai forget confirm" in asked.text
    assert await turn(core, "still here?", "e3")  # nothing erased before confirmation
    done = await slack(core).forget(ADA, KEY, "confirm")
    assert done.text.startswith("Erased 4 messages")
    assert (await slack(core).forget(ADA, KEY, "")).text == "I hold nothing of yours."
    bob = await slack(core).forget(ChatUser("slack", "U0BOB", "bob"), KEY, "")
    assert "This erases 2 messages in 1 conversations" in bob.text  # Bob's part is untouched


async def test_admins_tighten_moderation_for_one_channel(core: Core, fake_openai: FakeOpenAI) -> None:
    fake_openai.moderation_flags = {"fight": {"violence": 0.5}}
    assert (await turn(core, "a fight scene", "e1")).finished  # 0.5 is a flag by the server's defaults
    reply = await slack(core).admin(ADMIN, KEY, "moderation", "policy here violence block 0.45")
    assert reply.text == 'Moderation thresholds of slack:T1:C1 set: {"violence": {"block": 0.45}}.'
    refused = await turn(core, "another fight scene", "e2")
    assert refused.errors and "(violence)" in refused.errors[0].user_message
    other = ConversationKey("slack", "T1", "C2", "1700000000.000900")
    message = IncomingMessage(other, ADA, "a fight elsewhere", "e3", datetime.now(UTC))
    elsewhere = RecordingReplier()
    await core.turns.handle(message, elsewhere)
    assert elsewhere.finished  # other channels keep the defaults
    shown = (await slack(core).admin(ADMIN, KEY, "moderation", "policy here")).text
    assert "violence: flag 0.4, block 0.45" in shown and "(channel settings)" in shown
    with pytest.raises(BadInput, match=r"Unknown moderation category 'gore'"):
        await slack(core).admin(ADMIN, KEY, "moderation", "policy here gore block 0.1")
    with pytest.raises(NotAuthorized):
        await slack(core).admin(ADA, KEY, "moderation", "policy here clear")
    await slack(core).admin(ADMIN, KEY, "moderation", "policy here clear")
    assert (await turn(core, "a third fight scene", "e4")).finished


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("2024-01-01..9999-12-31", "9999-12-30"),
        ("9999-12-31..9999-12-31", "9999-12-30"),
        ("0001-01-01..2024-01-01", None),  # the far past is a valid (empty) range
    ],
)
async def test_report_of_a_range_at_the_edge_of_the_calendar_is_a_clear_refusal(
    core: Core, period: str, message: str | None
) -> None:
    if message is None:
        assert "(no usage in this period)" in (await slack(core).admin(ADMIN, KEY, "report", period)).text
        return
    with pytest.raises(BadInput, match=message):
        await slack(core).admin(ADMIN, KEY, "report", period)


async def _seed_days(core: Core, days: int) -> None:
    first = datetime(2023, 1, 1, 9, tzinfo=UTC)
    async with core.database.unit_of_work() as session:
        session.add_all(
            UsageRecord(
                platform="slack",
                workspace_id="T1",
                channel_id="C1",
                conversation_id=None,
                user_id="U0ADA",
                model="gpt-4o-mini",
                kind="chat",
                input_tokens=10,
                cached_tokens=0,
                output_tokens=10,
                images=0,
                cost_micros=1_000 + n,
                created_at=first + timedelta(days=n),
            )
            for n in range(days)
        )


async def test_a_report_of_many_days_renders_its_chart_off_the_event_loop(core: Core) -> None:
    """A chart of hundreds of daily bars took seconds of CPU on the loop; now it is bounded and rendered in a
    worker thread, so the loop keeps ticking while the admin waits."""
    await _seed_days(core, 700)
    async with LoopProbe() as probe:
        reply = await slack(core).admin(OPERATOR, KEY, "report", "2023-01-01..2024-12-31 by day")
    chart, table = reply.attachments
    assert sniff_image(chart.data) is not None
    assert len(list(csv.reader(io.StringIO(table.data.decode())))) == 701  # every day in the CSV
    assert probe.cpu < 0.25, probe  # seconds of CPU on the loop before; milliseconds between ticks after
