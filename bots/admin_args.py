"""The arguments of `threadwise admin …` (run by bots/admin_cli.py). Light on purpose: `threadwise --help`
builds this parser and loads nothing else."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from core.money.report_terms import GROUPS, PERIOD_HELP


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser("admin", help="quotas, reports and bans from the shell")
    actions = admin.add_subparsers(dest="admin_command", required=True)

    quota = actions.add_parser("quota", help="show, set or clear budget overrides")
    quota_actions = quota.add_subparsers(dest="quota_command", required=True)
    show = quota_actions.add_parser("show", help="overrides and defaults")
    show.add_argument("--scope", choices=("user", "channel", "workspace", "global"))
    for name in ("set", "clear"):
        action = quota_actions.add_parser(name, help=f"{name} the limit of one scope/subject/period")
        action.add_argument("--scope", required=True, choices=("user", "channel", "workspace", "global"))
        action.add_argument(
            "--subject",
            default="*",
            help="slack:U123 (user), slack:T1:C2 (channel), discord:GUILD (workspace), * (global)",
        )
        action.add_argument("--period", required=True, choices=("day", "month", "daily", "monthly"))
        if name == "set":
            action.add_argument("--usd", help="limit in USD, e.g. 2.50")
            action.add_argument("--tokens", type=int, help="limit in tokens")
            action.add_argument("--unlimited", action="store_true", help="no limit for this subject")

    report = actions.add_parser(
        "report", help="spend (or, --by feedback, up/down votes per model) for a period: table, CSV, chart"
    )
    report.add_argument("--by", choices=GROUPS, default="user")
    report.add_argument("--period", default="today", help=PERIOD_HELP)
    report.add_argument("--csv", type=Path, help="write the report as CSV to this file")
    report.add_argument("--chart", type=Path, help="write a PNG bar chart to this file")

    ban = actions.add_parser("ban", help="stop a user from using the assistant")
    ban.add_argument("user", help="platform:user_id, e.g. slack:U0123")
    ban.add_argument("--reason", default="")
    ban.add_argument("--for", dest="duration", help="e.g. 30m, 12h, 7d (default: until unbanned)")
    unban = actions.add_parser("unban", help="lift a ban")
    unban.add_argument("user", help="platform:user_id")
    actions.add_parser("bans", help="list active bans")

    moderation = actions.add_parser("moderation", help="recent moderation decisions, newest first")
    moderation.add_argument("--limit", type=int, default=20)
    moderation.add_argument("--user", help="only this user (platform:user_id)")
    moderation.add_argument(
        "--action", choices=("allow", "flag", "block", "redact", "unavailable"), help="only this decision"
    )
    moderation.add_argument("--since", type=parse_day, help="only from this UTC day on (YYYY-MM-DD)")

    forget = actions.add_parser("forget", help="erase a user's messages and personal data")
    forget.add_argument("user", help="platform:user_id")
    forget.add_argument("--yes", action="store_true", help="erase without asking (for scripts)")

    export = actions.add_parser("export", help="write everything stored about a user as JSON")
    export.add_argument("user", help="platform:user_id")
    export.add_argument("--out", type=Path, help="write to this file (default: standard output)")

    tools = actions.add_parser("tools", help="which tools the model may use per channel")
    tools_actions = tools.add_subparsers(dest="tools_command", required=True)
    tools_show = tools_actions.add_parser("show", help="the tools, and channels with their own list")
    tools_show.add_argument("--channel", help="platform:workspace_id:channel_id")
    tools_set = tools_actions.add_parser("set", help="the tools of one channel (replaces its list)")
    tools_set.add_argument("--channel", required=True, help="platform:workspace_id:channel_id")
    tools_set.add_argument("--tools", required=True, help="comma-separated tool names, or none")
    tools_clear = tools_actions.add_parser("clear", help="the channel uses the default tools again")
    tools_clear.add_argument("--channel", required=True, help="platform:workspace_id:channel_id")
    tools_approval = tools_actions.add_parser(
        "approval", help="tools that need the asker's approval in one channel (besides the default)"
    )
    tools_approval.add_argument("--channel", required=True, help="platform:workspace_id:channel_id")
    tools_approval.add_argument(
        "--patterns",
        required=True,
        help="comma-separated tool-name patterns (e.g. fetch_url,github__*), or none",
    )

    prompt = actions.add_parser("prompt", help="the persona (system prompt) of a channel or workspace")
    prompt_actions = prompt.add_subparsers(dest="prompt_command", required=True)
    for name, text in (
        ("show", "show the persona"),
        ("set", "set the persona (replaces it)"),
        ("clear", "remove the persona"),
    ):
        sub = prompt_actions.add_parser(name, help=text)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("--channel", help="platform:workspace_id:channel_id, e.g. slack:T01:C02")
        where.add_argument("--workspace", help="platform:workspace_id, e.g. slack:T01")
        if name == "set":
            sub.add_argument("text", help="added to the system prompt of new turns there")
            sub.add_argument("--model", help="default model there (one of THREADWISE_MODELS)")
            sub.add_argument("--tools", help="comma-separated tool names, or none (narrows the tools)")

    purge = actions.add_parser("purge", help="apply the retention policy now")
    purge.add_argument(
        "--days", type=positive_int, help="keep this many days (default: THREADWISE_RETENTION_DAYS)"
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_day(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2026-11-30") from None
