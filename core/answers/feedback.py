"""The feedback report: 👍 and 👎 per model over a period (``threadwise admin report --by feedback``,
``/ai-admin report <period> by feedback``), as a text table, CSV and a PNG chart like the spend reports."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import AnswerFeedback

FEEDBACK = "feedback"  # the report grouping
CSV_FIELDS = ("model", "up", "down")


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    model: str
    up: int
    down: int


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    label: str
    start: datetime
    end: datetime
    rows: tuple[FeedbackRow, ...]
    by: str = FEEDBACK

    @property
    def title(self) -> str:
        up, down = sum(r.up for r in self.rows), sum(r.down for r in self.rows)
        return f"Feedback by model, {self.label}: {up:,} up, {down:,} down"


async def build_feedback_report(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    label: str,
    workspace: tuple[str, str] | None = None,
) -> FeedbackReport:
    """One row per model: the votes cast in [start, end) (a changed vote counts as it stands)."""
    up = func.sum(case((AnswerFeedback.vote > 0, 1), else_=0))
    down = func.sum(case((AnswerFeedback.vote < 0, 1), else_=0))
    statement = (
        select(AnswerFeedback.model, up, down)
        .where(AnswerFeedback.created_at >= start, AnswerFeedback.created_at < end)
        .group_by(AnswerFeedback.model)
    )
    if workspace is not None:  # a server admin sees their own workspace only
        statement = statement.where(
            AnswerFeedback.platform == workspace[0], AnswerFeedback.workspace_id == workspace[1]
        )
        label = f"{label}, {workspace[0]}:{workspace[1]}"
    rows = [
        FeedbackRow(str(m), int(u or 0), int(d or 0)) for m, u, d in (await session.execute(statement)).all()
    ]
    rows.sort(key=lambda row: (-(row.up + row.down), row.model))
    return FeedbackReport(label=label, start=start, end=end, rows=tuple(rows))


def feedback_text(report: FeedbackReport) -> str:
    if not report.rows:
        return f"{report.title}\n(no feedback in this period)"
    table = [
        ("model", "up", "down"),
        *((row.model, f"{row.up:,}", f"{row.down:,}") for row in report.rows),
        ("total", f"{sum(r.up for r in report.rows):,}", f"{sum(r.down for r in report.rows):,}"),
    ]
    widths = [max(len(line[i]) for line in table) for i in range(3)]

    def render(line: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line)
        )

    rule = "  ".join("-" * width for width in widths)
    header, *body, totals = table
    return "\n".join([report.title, render(header), rule, *map(render, body), rule, render(totals)])


def feedback_csv(report: FeedbackReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in report.rows:
        writer.writerow([row.model, row.up, row.down])
    return out.getvalue()


def draw_feedback(report: FeedbackReport, size: tuple[int, int], max_bars: int = 25) -> bytes:
    """Up and down per model as horizontal bars (blocking: the caller runs it in a worker thread)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    axes: Any = figure.subplots()
    rows = report.rows[:max_bars]
    if rows:
        positions = list(range(len(rows)))
        axes.barh([p - 0.2 for p in positions], [r.up for r in rows], height=0.4, color="#59A14F", label="up")
        axes.barh(
            [p + 0.2 for p in positions], [r.down for r in rows], height=0.4, color="#E15759", label="down"
        )
        axes.set_yticks(positions, labels=[r.model[:40] for r in rows], fontsize=9)
        axes.set_ylim(max(len(rows), 4) - 0.5, -0.5)
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no feedback in this period", ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
    axes.set_xlabel("votes")
    axes.set_title(report.title, fontsize=11)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
