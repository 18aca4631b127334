"""What the home page reads of the ledger and the budget counters (SQLite; PostgreSQL with TEST_DATABASE_URL):
what is left of each budget, answers in progress counted as `reserve` counts them, and a workspace's spend
with its top users, other workspaces and earlier months left out."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from core.db.models import UsageRecord
from core.db.session import Database
from core.domain.clock import utc_now
from core.domain.errors import QuotaExceeded
from core.money.budgets import Budgets, defaults_from
from core.money.periods import period_start
from core.money.spend import workspace_spend
from core.settings import LimitSettings
from tests.integration.test_budgets import MINI
from tests.support import incoming, key

HOME_SCOPES = ("user", "workspace", "global")


def ledger_row(user: str, workspace: str, micros: int, tokens: int, *, days_ago: float = 0) -> UsageRecord:
    now = utc_now()
    at = (
        now - timedelta(days=days_ago)
        if days_ago
        else max(period_start("day", now), now - timedelta(seconds=5))
    )
    return UsageRecord(
        platform="console",
        workspace_id=workspace,
        channel_id="C1",
        user_id=user,
        model="gpt-4o-mini",
        kind="chat",
        input_tokens=tokens,
        cached_tokens=0,
        output_tokens=0,
        images=0,
        cost_micros=micros,
        created_at=at,
    )


async def test_standing_counts_the_ledger_then_holds_of_answers_in_progress(database: Database) -> None:
    limits = LimitSettings(  # type: ignore[call-arg]
        _env_file=None, user_daily_budget_usd=Decimal("1"), workspace_monthly_budget_usd=Decimal("50")
    )
    budgets = Budgets(database, MINI, defaults_from(limits))
    async with database.unit_of_work() as session:
        session.add_all([ledger_row("U1", "W1", 300_000, 1_000), ledger_row("U2", "W1", 200_000, 500)])

    before = {
        (s.limit.scope, s.limit.period): s for s in await budgets.standing(key(), "U1", scopes=HOME_SCOPES)
    }
    assert set(before) == {("user", "day"), ("workspace", "month")}  # only limits that are set
    assert before[("user", "day")].left_micros == 700_000  # from the ledger: no call reserved yet
    assert before[("workspace", "month")].left_micros == 49_500_000
    assert before[("user", "day")].left_tokens is None  # no token limit

    hold = await budgets.reserve_image(
        incoming("draw", "e1"), model="gpt-image-1", size="1024x1024", quality="high"
    )
    during = {
        (s.limit.scope, s.limit.period): s for s in await budgets.standing(key(), "U1", scopes=HOME_SCOPES)
    }
    assert during[("user", "day")].held_micros == hold.micros > 0
    assert during[("user", "day")].left_micros == 700_000 - hold.micros
    # what is shown as left is exactly what reservations may still take: they fit until it runs out
    held = [hold]
    for attempt in range(2, 10):
        [user_day] = [
            s for s in await budgets.standing(key(), "U1", scopes=("user",)) if s.limit.period == "day"
        ]
        assert user_day.left_micros is not None
        fits = user_day.left_micros >= hold.micros
        try:
            held.append(
                await budgets.reserve_image(
                    incoming("draw", f"e{attempt}"), model="gpt-image-1", size="1024x1024", quality="high"
                )
            )
        except QuotaExceeded:
            assert not fits
            break
        assert fits
    else:
        raise AssertionError("the daily budget never ran out")
    for extra in held[1:]:
        await budgets.release(extra)
    await budgets.release(hold)
    after = {
        (s.limit.scope, s.limit.period): s for s in await budgets.standing(key(), "U1", scopes=HOME_SCOPES)
    }
    assert after[("user", "day")].held_micros == 0 and after[("user", "day")].left_micros == 700_000


async def test_workspace_spend_is_this_workspace_this_period_and_its_top_users(database: Database) -> None:
    async with database.unit_of_work() as session:
        session.add_all(
            [
                ledger_row("U1", "W1", 300, 30),
                ledger_row("U2", "W1", 500, 50),
                ledger_row("U2", "W1", 100, 10),
                ledger_row("U3", "W1", 50, 5),
                ledger_row("U9", "W2", 9_000, 900),  # another workspace
                ledger_row("U1", "W1", 7_000, 700, days_ago=40),  # an earlier month
            ]
        )
    async with database.reader() as session:
        spend = await workspace_spend(session, "console", "W1", utc_now(), top=2)
    assert (spend.today_micros, spend.today_tokens) == (950, 95)
    assert (spend.month_micros, spend.month_tokens) == (950, 95)
    assert [(u.user_id, u.micros, u.tokens) for u in spend.top_users] == [("U2", 600, 60), ("U1", 300, 30)]
