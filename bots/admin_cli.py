"""`threadwise admin …`: what admins do in chat, from the shell (the caller counts as an admin)."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from core.admin import AdminService, describe_limit
from core.periods import parse_duration
from core.reports import GROUPS, PERIOD_HELP, to_csv, to_png, to_text
from core.types import ChatUser


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

    report = actions.add_parser("report", help="spend for a period, as a table, CSV and PNG chart")
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


def cli_actor() -> ChatUser:
    name = getpass.getuser()
    return ChatUser("cli", name, name, is_admin=True)


async def run_admin(admin: AdminService, args: argparse.Namespace) -> int:
    actor = cli_actor()
    command = args.admin_command
    if command == "quota":
        if args.quota_command == "show":
            for limit in await admin.quota_show(actor, scope=args.scope):
                print(describe_limit(limit) + ("" if limit.overridden else "  (default from settings)"))
            return 0
        if args.quota_command == "clear":
            removed = await admin.quota_clear(
                actor, scope=args.scope, subject=args.subject, period=args.period
            )
            print("override removed" if removed else "there was no override; defaults apply")
            return 0
        if not (args.usd or args.tokens is not None or args.unlimited):
            print("threadwise admin quota set: give --usd, --tokens or --unlimited", file=sys.stderr)
            return 2
        try:
            amount = Decimal(args.usd) if args.usd else None
        except InvalidOperation:
            print(f"threadwise admin quota set: --usd {args.usd!r} is not an amount", file=sys.stderr)
            return 2
        limit = await admin.quota_set(
            actor,
            scope=args.scope,
            subject=args.subject,
            period=args.period,
            usd_limit=amount,
            token_limit=args.tokens,
        )
        print("set: " + describe_limit(limit))
        return 0
    if command == "report":
        report = await admin.report(actor, period=args.period, by=args.by)
        print(to_text(report))
        if args.csv:
            args.csv.write_text(to_csv(report), encoding="utf-8")
            print(f"CSV written to {args.csv}")
        if args.chart:
            args.chart.write_bytes(to_png(report))
            print(f"chart written to {args.chart}")
        return 0
    if command == "ban":
        until = datetime.now(UTC) + parse_duration(args.duration) if args.duration else None
        info = await admin.ban(actor, args.user, reason=args.reason, until=until)
        when = f" until {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
        print(f"banned {args.user}{when}")
        return 0
    if command == "unban":
        print(
            f"unbanned {args.user}" if await admin.unban(actor, args.user) else f"{args.user} was not banned"
        )
        return 0
    for ban in await admin.bans(actor):
        when = f"until {ban.expires_at:%Y-%m-%d %H:%M} UTC" if ban.expires_at else "until unbanned"
        print(f"{ban.platform}:{ban.user_id}  {when}  by {ban.banned_by}  {ban.reason}")
    return 0
