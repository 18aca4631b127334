"""Spend reports from the usage ledger: grouped rows, as a text table, CSV and a PNG bar chart."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.answers.feedback import (
    FeedbackReport,
    draw_feedback,
    feedback_csv,
    feedback_text,
)
from core.db.models import UsageRecord
from core.domain.errors import BadInput
from core.money.periods import period_end, period_start
from core.money.pricing import MICROS_PER_USD, format_usd
from core.money.report_terms import GROUPS, PERIOD_HELP

CSV_FIELDS = ("group", "calls", "input_tokens", "cached_tokens", "output_tokens", "images", "cost_usd")


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str
    calls: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    images: int
    cost_micros: int


@dataclass(frozen=True, slots=True)
class Report:
    by: str
    label: str
    start: datetime
    end: datetime
    rows: tuple[ReportRow, ...]

    @property
    def total_micros(self) -> int:
        return sum(row.cost_micros for row in self.rows)

    @property
    def total_tokens(self) -> int:
        return sum(row.input_tokens + row.output_tokens for row in self.rows)

    @property
    def title(self) -> str:
        return (
            f"Spend by {self.by}, {self.label}: {format_usd(self.total_micros)} total, "
            f"{self.total_tokens:,} tokens, {sum(row.calls for row in self.rows):,} calls"
        )


def resolve_period(text: str, now: datetime) -> tuple[datetime, datetime, str]:
    """[start, end) in UTC and a label for a period name or an explicit date range."""
    name = text.strip().lower()
    today = period_start("day", now)
    if name == "today":
        return today, today + timedelta(days=1), f"today ({today:%Y-%m-%d})"
    if name == "yesterday":
        return today - timedelta(days=1), today, f"yesterday ({today - timedelta(days=1):%Y-%m-%d})"
    if name in ("this-month", "month"):
        return period_start("month", now), period_end("month", now), f"{now:%B %Y}"
    if name == "last-month":
        start = period_start("month", period_start("month", now) - timedelta(days=1))
        return start, period_start("month", now), f"{start:%B %Y}"
    found = re.fullmatch(r"last-(\d{1,3})-days", name)
    if found:
        days = int(found.group(1))
        return today - timedelta(days=days - 1), today + timedelta(days=1), f"the last {days} days"
    found = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", name)
    if found:
        return _date_range(text, *found.groups())
    raise BadInput(f"Unknown period {text!r}. Use {PERIOD_HELP}.")


LAST_DAY = date.max - timedelta(days=1)  # the last day whose end (midnight after it) a datetime can hold


def _date_range(text: str, first_text: str, last_text: str) -> tuple[datetime, datetime, str]:
    try:
        first, last = date.fromisoformat(first_text), date.fromisoformat(last_text)
    except ValueError:
        raise BadInput(f"{text!r} has an invalid date.") from None
    if last > LAST_DAY:
        raise BadInput(f"{text!r}: dates in a range go up to {LAST_DAY:%Y-%m-%d}.")
    if last < first:
        raise BadInput(f"{text!r}: the range ends before it starts.")
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return start, end, f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"


def _group_column(by: str, dialect: str) -> Any:
    if by == "user":
        return UsageRecord.platform + literal(":") + func.coalesce(UsageRecord.user_id, "(erased)")
    if by == "channel":
        return (
            UsageRecord.platform
            + literal(":")
            + UsageRecord.workspace_id
            + literal(":")
            + UsageRecord.channel_id
        )
    if by == "workspace":
        return UsageRecord.platform + literal(":") + UsageRecord.workspace_id
    if by == "model":
        return UsageRecord.model
    if by == "day":
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
        return func.substr(UsageRecord.created_at, 1, 10)  # stored as UTC ISO text on SQLite
    raise BadInput(f"Unknown grouping {by!r}. Use one of: {', '.join(GROUPS)}.")


async def build_report(
    session: AsyncSession,
    *,
    by: str,
    start: datetime,
    end: datetime,
    label: str,
    workspace: tuple[str, str] | None = None,
) -> Report:
    group = _group_column(by, session.get_bind().dialect.name).label("group")
    statement = (
        select(
            group,
            func.count(),
            func.sum(UsageRecord.input_tokens),
            func.sum(UsageRecord.cached_tokens),
            func.sum(UsageRecord.output_tokens),
            func.sum(UsageRecord.images),
            func.sum(UsageRecord.cost_micros),
        )
        .where(UsageRecord.created_at >= start, UsageRecord.created_at < end)
        .group_by(group)
    )
    if workspace is not None:  # a server admin sees their own workspace only
        statement = statement.where(
            UsageRecord.platform == workspace[0], UsageRecord.workspace_id == workspace[1]
        )
        label = f"{label}, {workspace[0]}:{workspace[1]}"
    rows = [
        ReportRow(str(g), int(n), int(i or 0), int(c or 0), int(o or 0), int(im or 0), int(cost or 0))
        for g, n, i, c, o, im, cost in (await session.execute(statement)).all()
    ]
    rows.sort(key=lambda row: row.group if by == "day" else (-row.cost_micros, row.group))
    return Report(by=by, label=label, start=start, end=end, rows=tuple(rows))


def _usd_text(micros: int) -> str:
    return f"{Decimal(micros) / MICROS_PER_USD:.6f}"


def to_text(report: Report | FeedbackReport) -> str:
    if isinstance(report, FeedbackReport):
        return feedback_text(report)
    header = (report.by, "calls", "input", "cached", "output", "images", "cost")
    body = [
        (
            row.group,
            f"{row.calls:,}",
            f"{row.input_tokens:,}",
            f"{row.cached_tokens:,}",
            f"{row.output_tokens:,}",
            f"{row.images:,}",
            format_usd(row.cost_micros),
        )
        for row in report.rows
    ]
    totals = (
        "total",
        f"{sum(r.calls for r in report.rows):,}",
        f"{sum(r.input_tokens for r in report.rows):,}",
        f"{sum(r.cached_tokens for r in report.rows):,}",
        f"{sum(r.output_tokens for r in report.rows):,}",
        f"{sum(r.images for r in report.rows):,}",
        format_usd(report.total_micros),
    )
    table = [header, *body, totals]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def render(line: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line)
        )

    rule = "  ".join("-" * width for width in widths)
    if not report.rows:
        return f"{report.title}\n(no usage in this period)"
    return "\n".join([report.title, render(header), rule, *map(render, body), rule, render(totals)])


def to_csv(report: Report | FeedbackReport) -> str:
    """One row per group; ``cost_usd`` is exact (six decimals = micro-dollars). Feedback: model, up, down."""
    if isinstance(report, FeedbackReport):
        return feedback_csv(report)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in report.rows:
        writer.writerow(
            [
                row.group,
                row.calls,
                row.input_tokens,
                row.cached_tokens,
                row.output_tokens,
                row.images,
                _usd_text(row.cost_micros),
            ]
        )
    return out.getvalue()


def from_csv(text: str) -> list[ReportRow]:
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        rows.append(
            ReportRow(
                record["group"],
                int(record["calls"]),
                int(record["input_tokens"]),
                int(record["cached_tokens"]),
                int(record["output_tokens"]),
                int(record["images"]),
                int(Decimal(record["cost_usd"]) * MICROS_PER_USD),
            )
        )
    return rows


CHART_SIZE = (1200, 700)  # pixels


MAX_DAY_BARS = 62  # a chart by day shows the latest two months; earlier days are one bar


def chart_rows(report: Report, *, max_bars: int = 25) -> list[ReportRow]:
    """The bars of the chart, bounded whatever the period: the top ``max_bars`` groups and the rest summed as
    "others"; by day, the latest ``MAX_DAY_BARS`` days and the earlier ones summed (drawing a bar costs
    milliseconds, so hundreds of them cost seconds)."""
    rows = list(report.rows)
    if report.by == "day" and len(rows) > MAX_DAY_BARS:
        earlier = rows[: len(rows) - MAX_DAY_BARS + 1]
        return [_summed(f"{len(earlier)} earlier days", earlier), *rows[len(earlier) :]]
    if report.by != "day" and len(rows) > max_bars:
        return [*rows[: max_bars - 1], _summed(f"{len(rows) - max_bars + 1} others", rows[max_bars - 1 :])]
    return rows


def _summed(group: str, rows: list[ReportRow]) -> ReportRow:
    return ReportRow(group, sum(r.calls for r in rows), 0, 0, 0, 0, sum(r.cost_micros for r in rows))


# Matplotlib's figures are not meant to be drawn from several threads at once; charts are drawn in worker
# threads (never on the event loop), one at a time.
_RENDERING = threading.Lock()


async def render_png(report: Report | FeedbackReport) -> bytes:
    """``to_png`` in a worker thread: the event loop stays free while the chart is drawn."""
    return await asyncio.to_thread(to_png, report)


def to_png(report: Report | FeedbackReport, *, max_bars: int = 25) -> bytes:
    """A horizontal bar chart of cost per group (see ``chart_rows`` for which bars); of feedback, up and
    down per model. Blocking: call it through ``render_png`` from async code."""
    with _RENDERING:
        if isinstance(report, FeedbackReport):
            return draw_feedback(report, CHART_SIZE, max_bars)
        return _draw(report, chart_rows(report, max_bars=max_bars))


def _draw(report: Report, rows: list[ReportRow]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    dpi = 100
    figure = Figure(figsize=(CHART_SIZE[0] / dpi, CHART_SIZE[1] / dpi), dpi=dpi)
    axes = figure.subplots()
    labels = [row.group if len(row.group) <= 40 else row.group[:39] + "…" for row in rows]
    values = [row.cost_micros / MICROS_PER_USD for row in rows]
    if rows:
        positions = list(range(len(rows)))
        bars = axes.barh(positions, values, height=0.6, color="#4C78A8")
        axes.set_yticks(positions, labels=labels, fontsize=9)
        axes.set_ylim(max(len(rows), 8) - 0.5, -0.5)  # largest first; a few bars stay bar-shaped
        axes.bar_label(bars, labels=[format_usd(row.cost_micros) for row in rows], padding=3, fontsize=8)
        axes.margins(x=0.15)
    else:
        axes.text(0.5, 0.5, "no usage in this period", ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _pos: format_usd(round(value * MICROS_PER_USD)))
    )
    axes.set_xlabel("cost (USD)")
    axes.set_title(report.title, fontsize=11)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
