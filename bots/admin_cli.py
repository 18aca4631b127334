"""`threadwise admin …`: what admins do in chat, from the shell (the caller counts as an admin). Its arguments
are in bots/admin_args.py."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from bots.plain import PLAIN
from core.admin.export import UserExport
from core.admin.personas import Personas, parse_place, place_name
from core.admin.retention import Retention
from core.admin.service import AdminService
from core.commands.describe import describe_limit, describe_moderation
from core.domain.clock import parse_duration
from core.domain.types import ChatUser
from core.money.reports import render_png, to_csv, to_text
from core.tools.governance import ToolGovernance, parse_channel


def cli_actor() -> ChatUser:
    name = getpass.getuser()
    return ChatUser("cli", name, name, is_admin=True)


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


async def _export(shell: _Shell, args: argparse.Namespace) -> int:
    platform, _, user_id = args.user.partition(":")
    if not platform or not user_id:
        return _fail("export", "give the user as platform:user_id")
    try:
        out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    except OSError as exc:
        return _fail("export", f"cannot write {args.out}: {exc.strerror}")
    await shell.admin.record(shell.actor, "export", args.user, {"out": str(args.out) if args.out else "-"})
    export = UserExport(shell.retention.database, platform, user_id)
    try:
        async for chunk in export.chunks():
            out.write(chunk)
    finally:
        if args.out:
            out.close()
    if args.out:
        counts = ", ".join(
            f"{count} {name.replace('_', ' ')}" for name, count in export.counts.items() if count
        )
        print(f"{args.user}: {counts or 'nothing stored'}; written to {args.out}")
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
    elif args.tools_command == "approval":
        listed = [] if args.patterns.strip().lower() == "none" else args.patterns.split(",")
        patterns = [pattern.strip() for pattern in listed if pattern.strip()]
        print(await tools.approval(shell.actor, parse_channel(args.channel), patterns))
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
    "export": _export,
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
