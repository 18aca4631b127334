"""What a spend report can be asked for: its groupings and periods (no database layer, so the command line's
help can name them without loading it)."""

from __future__ import annotations

GROUPS = ("user", "channel", "workspace", "model", "day", "feedback")  # feedback: up/down per model
PERIOD_HELP = "today, yesterday, this-month, last-month, last-7-days, last-30-days or YYYY-MM-DD..YYYY-MM-DD"
