"""Reports against a seeded ledger: grouping and totals, CSV round trip, a PNG chart that opens."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image

from core.db.models import UsageRecord
from core.db.session import Database
from core.money.reports import (
    CHART_SIZE,
    MAX_DAY_BARS,
    Report,
    ReportRow,
    build_report,
    chart_rows,
    from_csv,
    resolve_period,
    to_csv,
    to_png,
    to_text,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def record(
    user: str, channel: str, model: str, cost: int, day: int, tokens: tuple[int, int] = (100, 10)
) -> UsageRecord:
    return UsageRecord(
        platform="slack",
        workspace_id="T1",
        channel_id=channel,
        conversation_id=None,
        user_id=user,
        model=model,
        kind="chat",
        input_tokens=tokens[0],
        cached_tokens=0,
        output_tokens=tokens[1],
        images=0,
        cost_micros=cost,
        created_at=datetime(2026, 6, day, 9, 30, tzinfo=UTC),
    )


async def seed(database: Database) -> None:
    async with database.unit_of_work() as session:
        session.add_all(
            [
                record("U1", "C1", "gpt-4o-mini", 1_000, 15),
                record("U1", "C2", "gpt-4o", 25_000, 15),
                record("U2", "C1", "gpt-4o-mini", 3_000, 15),
                record("U2", "C1", "gpt-4o-mini", 7_000, 14),  # yesterday
                record("U3", "C3", "gpt-4o", 999_999, 1),  # earlier this month
                record("U3", "C3", "gpt-4o", 5, 1),
            ]
        )
        session.add(
            UsageRecord(
                platform="slack",
                workspace_id="T1",
                channel_id="C1",
                conversation_id=None,
                user_id="U9",
                model="gpt-4o",
                kind="chat",
                input_tokens=1,
                cached_tokens=0,
                output_tokens=1,
                images=0,
                cost_micros=123,
                created_at=datetime(2026, 5, 31, 23, 59, tzinfo=UTC),  # last month
            )
        )


async def report(database: Database, by: str, period: str):  # type: ignore[no-untyped-def]
    start, end, label = resolve_period(period, NOW)
    async with database.reader() as session:
        return await build_report(session, by=by, start=start, end=end, label=label)


async def test_grouping_and_totals(database: Database) -> None:
    await seed(database)
    by_user = await report(database, "user", "today")
    assert [(r.group, r.calls, r.cost_micros) for r in by_user.rows] == [
        ("slack:U1", 2, 26_000),
        ("slack:U2", 1, 3_000),
    ]
    assert by_user.total_micros == 29_000 and by_user.total_tokens == 330
    assert by_user.title == "Spend by user, today (2026-06-15): $0.029 total, 330 tokens, 3 calls"

    by_model = await report(database, "model", "this-month")
    assert [(r.group, r.calls, r.cost_micros) for r in by_model.rows] == [
        ("gpt-4o", 3, 1_025_004),
        ("gpt-4o-mini", 3, 11_000),
    ]
    by_channel = await report(database, "channel", "yesterday")
    assert [(r.group, r.cost_micros) for r in by_channel.rows] == [("slack:T1:C1", 7_000)]
    by_day = await report(database, "day", "2026-06-01..2026-06-15")
    assert [(r.group, r.cost_micros) for r in by_day.rows] == [
        ("2026-06-01", 1_000_004),
        ("2026-06-14", 7_000),
        ("2026-06-15", 29_000),
    ]
    last_month = await report(database, "user", "last-month")
    assert [(r.group, r.cost_micros) for r in last_month.rows] == [("slack:U9", 123)]

    table = to_text(by_user)
    assert table.splitlines()[0] == by_user.title
    assert table.splitlines()[-1].split() == ["total", "3", "300", "0", "30", "0", "$0.029"]


async def test_csv_round_trips_exactly(database: Database) -> None:
    await seed(database)
    by_model = await report(database, "model", "this-month")
    text = to_csv(by_model)
    assert text.splitlines()[0] == "group,calls,input_tokens,cached_tokens,output_tokens,images,cost_usd"
    assert text.splitlines()[1] == "gpt-4o,3,300,0,30,0,1.025004"
    assert from_csv(text) == list(by_model.rows)


async def test_chart_is_a_readable_png_of_the_expected_size(database: Database) -> None:
    await seed(database)
    png = to_png(await report(database, "user", "this-month"))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == CHART_SIZE
    empty = Image.open(io.BytesIO(to_png(await report(database, "user", "2020-01-01..2020-01-02"))))
    assert empty.size == CHART_SIZE


def test_the_chart_has_a_bounded_number_of_bars_whatever_the_period() -> None:
    def report(by: str, count: int) -> Report:
        rows = tuple(ReportRow(f"g{n:04d}", 1, 1, 0, 1, 0, 10 + n) for n in range(count))
        return Report(by=by, label="x", start=NOW, end=NOW, rows=rows)

    days = chart_rows(report("day", 1000))
    assert len(days) == MAX_DAY_BARS
    assert days[0].group == f"{1000 - MAX_DAY_BARS + 1} earlier days" and days[-1].group == "g0999"
    assert sum(row.cost_micros for row in days) == sum(10 + n for n in range(1000))
    assert chart_rows(report("day", 31)) == list(report("day", 31).rows)  # a month by day: every day
    users = chart_rows(report("user", 100))
    assert len(users) == 25 and users[-1].group == "76 others"
    assert Image.open(io.BytesIO(to_png(report("day", 1000)))).size == CHART_SIZE
