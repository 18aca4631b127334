"""`/ai-admin …`: who may run it, then quotas, reports and bans; moderation and tools in their own modules."""

from __future__ import annotations

from core.admin.personas import Personas
from core.admin.service import AdminService
from core.commands.channel_tools import ChannelToolCommands
from core.commands.describe import describe_ban, describe_limit
from core.commands.echo import echoed
from core.commands.help import ADMIN_HELP
from core.commands.moderation import ModerationCommands
from core.commands.parsing import (
    ADMIN_COMMANDS,
    is_duration,
    parse_amount,
    parse_report,
    scope_subject,
    user_subject,
    words_of,
)
from core.commands.persona import PersonaCommands
from core.commands.results import Heading, Preformatted, Reply, line, say
from core.commands.tenancy import AdminCall, operators_only, within
from core.domain.clock import Clock, parse_duration
from core.domain.errors import BadInput
from core.domain.types import Attachment, ChatUser, ConversationKey
from core.guards.channel_policy import ChannelPolicies
from core.guards.moderation import ModerationPolicy
from core.money.report_terms import GROUPS
from core.money.reports import render_png, to_csv, to_text
from core.tools.governance import ToolGovernance

_PERIOD_FIRST = ("day", "month", "daily", "monthly")


class AdminCommands:
    def __init__(
        self,
        *,
        admin: AdminService,
        tools: ToolGovernance | None,
        policies: ChannelPolicies | None,
        moderation: ModerationPolicy | None,
        clock: Clock,
        personas: Personas | None = None,
    ) -> None:
        self._admin = admin
        self._personas = PersonaCommands(admin, personas)
        self._clock = clock
        self._moderation = ModerationCommands(admin, policies, moderation)
        self._tools = ChannelToolCommands(admin, tools)

    async def run(self, user: ChatUser, key: ConversationKey, command: str, args: str) -> Reply:
        """`/ai-admin <command> <args>`; NotAuthorized for non-admins (recorded by AdminService)."""
        command = command.strip().lower()
        if not self._admin.is_admin(user):  # before anything else: a refusal tells nothing and is recorded
            await self._admin.refuse(user, command or "help", None, "Only admins can do that.")
        tenant = None if self._admin.is_operator(user) else (key.platform, key.workspace_id)
        call = AdminCall(user, key, tenant)
        if command == "prompt":  # free text: not split as a shell would
            return await self._personas.run(call, args)
        words = words_of(args)
        if command == "quota":
            return await self._quota(call, words)
        if command == "report":
            return await self._report(call, words)
        if command in ("ban", "unban"):
            await operators_only(self._admin, call, command, None)  # a ban reaches every workspace
        if command == "ban":
            return await self._ban(call, words)
        if command == "unban":
            return await self._unban(call, words)
        if command == "moderation":
            return await self._moderation.run(call, words)
        if command == "tools":
            return await self._tools.run(call, words)
        if command in ("help", ""):
            return Reply(ADMIN_HELP)
        raise BadInput(f"Unknown admin command `{echoed(command)}`. Use one of: {', '.join(ADMIN_COMMANDS)}.")

    async def _quota(self, call: AdminCall, words: list[str]) -> Reply:
        action = words[0].lower() if words else "show"
        rest = words[1:]
        if action == "show":
            return await self._quota_show(call, rest[0].lower() if rest else None)
        if action not in ("set", "clear") or not rest:
            raise BadInput(
                "Usage: `quota show`, `quota set <scope> <subject> <period> <amount>`, `quota clear …`."
            )
        scope, rest = rest[0].lower(), rest[1:]
        if scope == "global" and (not rest or rest[0].lower() in _PERIOD_FIRST):
            rest = ["*", *rest]
        if len(rest) < 2:
            amount = " <amount>" if action == "set" else ""
            raise BadInput(f"Usage: `quota {action} {scope} <subject> <day|month>{amount}`.")
        subject = scope_subject(scope, rest[0], call.key)
        if scope not in ("channel", "workspace"):
            await operators_only(self._admin, call, f"quota.{action}", subject)
        await within(self._admin, call, subject, f"quota.{action}")
        period = rest[1].lower()
        if action == "clear":
            removed = await self._admin.quota_clear(call.user, scope=scope, subject=subject, period=period)
            return say("Override removed; defaults apply." if removed else "There was no override.")
        usd_limit, token_limit = parse_amount(" ".join(rest[2:]))
        limit = await self._admin.quota_set(
            call.user,
            scope=scope,
            subject=subject,
            period=period,
            usd_limit=usd_limit,
            token_limit=token_limit,
        )
        return say("Set: ", describe_limit(limit))

    async def _quota_show(self, call: AdminCall, scope: str | None) -> Reply:
        limits = await self._admin.quota_show(call.user, scope=scope)
        limits = [limit for limit in limits if not limit.overridden or call.owns(limit.subject)]
        if not limits:
            return say("No budgets are set: usage is unlimited.")
        shown = [line(describe_limit(limit), "" if limit.overridden else " (default)") for limit in limits]
        return Reply((Heading("Budgets"), *shown))

    async def _report(self, call: AdminCall, words: list[str]) -> Reply:
        period, by = parse_report(words)
        if by not in GROUPS:
            raise BadInput(f"A report is grouped by one of {', '.join(GROUPS)}, not `{echoed(by)}`.")
        report = await self._admin.report(call.user, period=period, by=by, workspace=call.tenant)
        stamp = report.label.replace(" ", "-").replace("(", "").replace(")", "")
        chart = await render_png(report)  # seconds of CPU for a long period: not on the event loop
        files = (
            Attachment(f"threadwise-report-{stamp}-by-{by}.png", "image/png", chart),
            Attachment(f"threadwise-report-{stamp}-by-{by}.csv", "text/csv", to_csv(report).encode()),
        )
        return Reply((Preformatted(to_text(report)),), files)

    async def _ban(self, call: AdminCall, words: list[str]) -> Reply:
        if not words or words[0].lower() == "list":
            bans = await self._admin.bans(call.user)
            if not bans:
                return say("Nobody is banned.")
            return Reply((Heading("Bans"), *(line(describe_ban(ban)) for ban in bans)))
        target = user_subject(words[0], call.key)
        rest = words[1:]
        until = None
        if rest and is_duration(rest[0]):
            until = self._clock() + parse_duration(rest[0])
            rest = rest[1:]
        info = await self._admin.ban(call.user, target, reason=" ".join(rest), until=until)
        when = f" until {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
        return say(f"Banned {target}{when}.")

    async def _unban(self, call: AdminCall, words: list[str]) -> Reply:
        if len(words) != 1:
            raise BadInput("Usage: `unban <@user>`.")
        target = user_subject(words[0], call.key)
        removed = await self._admin.unban(call.user, target)
        return say(f"Unbanned {target}." if removed else f"{target} was not banned.")
