"""`threadwise admin …`: what admins do in chat, from the shell (the caller counts as an admin)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from bots.plain import PLAIN
from core.admin.personas import Personas, parse_place, place_name
from core.admin.retention import Retention
from core.admin.service import AdminService
from core.commands.describe import describe_limit, describe_moderation
from core.domain.clock import parse_duration
from core.domain.types import ChatUser
from core.money.reports import GROUPS, PERIOD_HELP, render_png, to_csv, to_text
from core.tools.governance import ToolGovernance, parse_channel


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

    tools = actions.add_parser("tools", help="which tools the model may use per channel")
    tools_actions = tools.add_subparsers(dest="tools_command", required=True)
    tools_show = tools_actions.add_parser("show", help="the tools, and channels with their own list")
    tools_show.add_argument("--channel", help="platform:workspace_id:channel_id")
    tools_set = tools_actions.add_parser("set", help="the tools of one channel (replaces its list)")
    tools_set.add_argument("--channel", required=True, help="platform:workspace_id:channel_id")
    tools_set.add_argument("--tools", required=True, help="comma-separated tool names, or none")
    tools_clear = tools_actions.add_parser("clear", help="the channel uses the default tools again")
    tools_clear.add_argument("--channel", required=True, help="platform:workspace_id:channel_id")

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


def cli_actor() -> ChatUser:
    name = getpass.getuser()
    return ChatUser("cli", name, name, is_admin=True)


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


@dataclass(frozen=True, slots=True)
class _Shell:
    admin: AdminService
    retention: Retention
    tools: ToolGovernance | None
    retention_days: int | None
    confirm: Callable[[str], bool]
    actor: ChatUser
    personas: Personas | None = None


Handler = Callable[[_Shell, argparse.Namespace], Awaitable[int]]


async def run_admin(
    admin: AdminService,
    retention: Retention,
    args: argparse.Namespace,
    *,
    retention_days: int | None,
    tools: ToolGovernance | None = None,
    confirm: Callable[[str], bool] | None = None,
    personas: Personas | None = None,
) -> int:
    shell = _Shell(admin, retention, tools, retention_days, confirm or _ask, cli_actor(), personas)
    return await _HANDLERS[args.admin_command](shell, args)


def _fail(command: str, problem: str) -> int:
    print(f"threadwise admin {command}: {problem}", file=sys.stderr)
    return 2


async def _moderation(shell: _Shell, args: argparse.Namespace) -> int:
    events = await shell.admin.moderation(
        shell.actor, limit=args.limit, user=args.user, action=args.action, since=args.since
    )
    for event in events:
        print(PLAIN.spans(describe_moderation(event)))
    if not events:
        print("no moderation events match")
    return 0


async def _forget(shell: _Shell, args: argparse.Namespace) -> int:
    platform, _, user_id = args.user.partition(":")
    if not user_id:
        return _fail("forget", "give the user as platform:user_id")
    preview = await shell.retention.erasure_preview(platform, user_id)
    if preview.empty:
        print(f"nothing is stored for {args.user}")
        return 0
    print(f"{args.user}: {preview.describe()}")
    if not args.yes and not shell.confirm("Erase all of it? Type yes: "):
        print("nothing erased")
        return 1
    await shell.admin.record(shell.actor, "forget", args.user, {})
    erased = await shell.retention.erase(platform, user_id)
    print(f"erased {erased.describe()}")
    return 0


async def _tools(shell: _Shell, args: argparse.Namespace) -> int:
    tools = shell.tools
    if tools is None:
        return _fail("tools", "tools are switched off (THREADWISE_TOOLS=none)")
    if args.tools_command == "show":
        channel = parse_channel(args.channel) if args.channel else None
        print(await tools.show(shell.actor, channel))
    elif args.tools_command == "set":
        names = [] if args.tools.strip().lower() == "none" else [n.strip() for n in args.tools.split(",")]
        print(await tools.set(shell.actor, parse_channel(args.channel), [n for n in names if n]))
    else:
        print(await tools.clear(shell.actor, parse_channel(args.channel)))
    return 0


async def _prompt(shell: _Shell, args: argparse.Namespace) -> int:
    personas = shell.personas
    if personas is None:
        return _fail("prompt", "personas are not available")
    place = parse_place(args.channel, args.workspace)
    if args.prompt_command == "show":
        stored = await personas.show(shell.actor, place)
        if stored is None:
            print(f"{place_name(place)}: no persona")
            return 0
        print(f"{place_name(place)} (set by {stored.set_by}, {stored.updated_at:%Y-%m-%d %H:%M} UTC):")
        print(stored.persona.prompt)
        if stored.persona.model:
            print(f"model: {stored.persona.model}")
        if stored.persona.tools is not None:
            print(f"tools: {', '.join(stored.persona.tools) or 'none'}")
    elif args.prompt_command == "set":
        tools = None
        if args.tools is not None:
            listed = [] if args.tools.strip().lower() == "none" else args.tools.split(",")
            tools = [name.strip() for name in listed if name.strip()]
        await personas.set(shell.actor, place, args.text, model=args.model, tools=tools)
        print(f"{place_name(place)}: persona set")
    else:
        removed = await personas.clear(shell.actor, place)
        print(f"{place_name(place)}: persona removed" if removed else f"{place_name(place)}: no persona")
    return 0


async def _purge(shell: _Shell, args: argparse.Namespace) -> int:
    days = args.days or shell.retention_days
    if not days:
        return _fail("purge", "give --days or set THREADWISE_RETENTION_DAYS")
    summary = await shell.retention.purge(days)
    await shell.admin.record(shell.actor, "purge", None, {"days": days})
    print(
        f"older than {days} days: {summary.messages} messages of {summary.conversations} conversations, "
        f"{summary.moderation_events} moderation events, {summary.processed_events} event ids removed; "
        f"{summary.usage_rows_anonymised} usage rows anonymised"
    )
    return 0


async def _quota(shell: _Shell, args: argparse.Namespace) -> int:
    admin, actor = shell.admin, shell.actor
    if args.quota_command == "show":
        for limit in await admin.quota_show(actor, scope=args.scope):
            default = "" if limit.overridden else "  (default from settings)"
            print(PLAIN.spans(describe_limit(limit)) + default)
        return 0
    if args.quota_command == "clear":
        removed = await admin.quota_clear(actor, scope=args.scope, subject=args.subject, period=args.period)
        print("override removed" if removed else "there was no override; defaults apply")
        return 0
    return await _quota_set(shell, args)


async def _quota_set(shell: _Shell, args: argparse.Namespace) -> int:
    if not (args.usd or args.tokens is not None or args.unlimited):
        return _fail("quota set", "give --usd, --tokens or --unlimited")
    try:
        amount = Decimal(args.usd) if args.usd else None
    except InvalidOperation:
        return _fail("quota set", f"--usd {args.usd!r} is not an amount")
    limit = await shell.admin.quota_set(
        shell.actor,
        scope=args.scope,
        subject=args.subject,
        period=args.period,
        usd_limit=amount,
        token_limit=args.tokens,
    )
    print("set: " + PLAIN.spans(describe_limit(limit)))
    return 0


async def _report(shell: _Shell, args: argparse.Namespace) -> int:
    report = await shell.admin.report(shell.actor, period=args.period, by=args.by)
    print(to_text(report))
    if args.csv:
        args.csv.write_text(to_csv(report), encoding="utf-8")
        print(f"CSV written to {args.csv}")
    if args.chart:
        args.chart.write_bytes(await render_png(report))
        print(f"chart written to {args.chart}")
    return 0


async def _ban(shell: _Shell, args: argparse.Namespace) -> int:
    until = datetime.now(UTC) + parse_duration(args.duration) if args.duration else None
    info = await shell.admin.ban(shell.actor, args.user, reason=args.reason, until=until)
    when = f" until {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
    print(f"banned {args.user}{when}")
    return 0


async def _unban(shell: _Shell, args: argparse.Namespace) -> int:
    removed = await shell.admin.unban(shell.actor, args.user)
    print(f"unbanned {args.user}" if removed else f"{args.user} was not banned")
    return 0


async def _bans(shell: _Shell, args: argparse.Namespace) -> int:
    for ban in await shell.admin.bans(shell.actor):
        when = f"until {ban.expires_at:%Y-%m-%d %H:%M} UTC" if ban.expires_at else "until unbanned"
        print(f"{ban.platform}:{ban.user_id}  {when}  by {ban.banned_by}  {ban.reason}")
    return 0


_HANDLERS: dict[str, Handler] = {
    "moderation": _moderation,
    "forget": _forget,
    "tools": _tools,
    "prompt": _prompt,
    "purge": _purge,
    "quota": _quota,
    "report": _report,
    "ban": _ban,
    "unban": _unban,
    "bans": _bans,
}


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        print("not a terminal: add --yes to erase without asking", file=sys.stderr)
        return False
    return input(question).strip().lower() == "yes"
