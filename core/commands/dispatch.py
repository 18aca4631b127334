"""The chat command vocabulary of DESIGN.md §6 (`/ai …`, `/ai-admin …`), shared by every adapter.

Adapters parse only what their platform hands them (Slack: one text; Discord: typed options), call these
methods and render the ``CommandReply``. Admin rights come from the platform identity (``ChatUser.is_admin``)
and ``THREADWISE_ADMINS``, never from message text; every admin call is recorded by ``AdminService``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from core.admin.retention import Retention
from core.admin.service import AdminService, describe_limit, describe_moderation
from core.domain.clock import Clock, parse_duration, utc_now
from core.domain.errors import BadInput
from core.domain.types import Attachment, ChatUser, ConversationKey, IncomingMessage
from core.guards.channel_policy import Channel, ChannelPolicies
from core.guards.moderation import ModerationPolicy
from core.guards.redactor import Redactor
from core.llm.image_generation import ImageGenerator
from core.money.budgets import Budgets, describe_usage
from core.money.pricing import format_usd
from core.money.reports import GROUPS, PERIOD_HELP, to_csv, to_png, to_text
from core.tools.governance import ToolGovernance
from core.turn.service import ConversationService

Tenant = tuple[str, str] | None  # (platform, workspace_id) a server admin is limited to; None: an operator
OPERATORS_ONLY = (
    "Only the operators listed in THREADWISE_ADMINS can do that: bans and user or global budgets apply to "
    "every workspace. As a workspace admin you manage your own channels and workspace."
)
OUTSIDE_WORKSPACE = "As a workspace admin you can manage only the channels and budget of your own workspace."

AI_COMMANDS = ("ask", "chat", "reset", "usage", "model", "image", "forget", "help")
ADMIN_COMMANDS = ("quota", "report", "ban", "unban", "moderation", "tools")

_USER_MENTION = re.compile(r"<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>")
_CHANNEL_MENTION = re.compile(r"<#([A-Za-z0-9]+)(?:\|[^>]*)?>")
_TOKEN_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([km]?)\s*tokens?", re.IGNORECASE)

ADMIN_HELP = """\
*Admin commands*
• `quota show [user|channel|workspace|global]`
• `quota set <scope> <subject> <day|month> <$5 | 200k tokens | unlimited>` (subject: @user, #channel, \
`here` for this channel or workspace, `*` for global)
• `quota clear <scope> <subject> <day|month>`
• `report [period] [by user|channel|workspace|model|day]`; period: {periods}
• `ban <@user> [30m|12h|7d] [reason]`, `ban list`, `unban <@user>`
• `moderation [count] [user <@user>] [action allow|flag|block|redact|unavailable]`
• `moderation policy <#channel|here> [show|clear|flag 0.3 block 0.6|violence block 0.5]`
• `tools [show] [#channel]`, `tools set <#channel|here> calculator,current_time|none`, \
`tools clear <#channel|here>`"""


@dataclass(frozen=True, slots=True)
class CommandReply:
    text: str
    attachments: tuple[Attachment, ...] = ()
    public: bool = False  # False: only the caller should see it (ephemeral)


def parse_ai_text(text: str) -> tuple[str, str]:
    """The text after `/ai` on Slack: a subcommand and its argument; anything else is a question (ask)."""
    stripped = text.strip()
    if not stripped:
        return "help", ""
    head, _, rest = stripped.partition(" ")
    if head.lower() in AI_COMMANDS:
        return head.lower(), rest.strip()
    return "ask", stripped


class Commands:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        budgets: Budgets,
        admin: AdminService,
        images: ImageGenerator | None,
        retention: Retention,
        tools: ToolGovernance | None = None,
        policies: ChannelPolicies | None = None,
        moderation: ModerationPolicy | None = None,
        redactor: Redactor | None = None,
        default_model: str,
        models: Sequence[str] = (),
        clock: Clock = utc_now,
    ) -> None:
        self._conversations = conversations
        self._budgets = budgets
        self._admin = admin
        self._images = images
        self._retention = retention
        self._tools = tools
        self._policies = policies
        self._moderation_policy = moderation
        self._redactor = redactor
        self._default_model = default_model
        self._models = tuple(models)
        self._clock = clock

    def is_admin(self, user: ChatUser) -> bool:
        return self._admin.is_admin(user)

    def display(self, text: str) -> str:
        """A user's text as the bot may repeat it in a channel: redacted like everything the core stores."""
        return self._redactor.redact(text).text if self._redactor is not None else text

    async def is_conversation(self, key: ConversationKey) -> bool:
        return await self._conversations.exists(key)

    # ---- everyone -----------------------------------------------------------------------------------------

    def help(self, user: ChatUser) -> CommandReply:
        lines = [
            "*Threadwise*: ask me anything; in a thread I remember the conversation.",
            "• `/ai ask <prompt>`: a question, answered in a thread",
            "• `/ai chat <prompt>`: start a conversation thread",
            "• `/ai reset`: forget this conversation's history",
            "• `/ai usage`: what you have spent today and this month, and your limits",
            "• `/ai model [name]`: show or change the model of this conversation",
            "• `/ai image <prompt>`: generate an image",
            "• `/ai forget`: erase your messages and personal data (asks for confirmation)",
        ]
        text = "\n".join(lines)
        if self.is_admin(user):
            text += "\n\n" + ADMIN_HELP.format(periods=PERIOD_HELP)
        return CommandReply(text)

    async def reset(self, user: ChatUser, key: ConversationKey) -> CommandReply:
        hidden = await self._conversations.reset(key)
        if not hidden:
            return CommandReply("There is nothing to forget here yet.")
        return CommandReply(f"Done: I no longer see the {hidden} earlier messages of this conversation.")

    async def usage(self, user: ChatUser, key: ConversationKey) -> CommandReply:
        usage = await self._budgets.usage_of(user, key)
        return CommandReply("*Your usage*\n" + describe_usage(usage, self._clock()))

    async def set_model(self, user: ChatUser, key: ConversationKey, name: str) -> CommandReply:
        name = name.strip()
        allowed = self._models or (self._default_model,)
        choices = ", ".join(f"`{m}`" for m in allowed)
        if not name:
            current = await self._conversations.model_of(key)
            return CommandReply(f"This conversation uses `{current}`. Available: {choices}.")
        if name not in allowed:
            raise BadInput(f"`{name}` is not available here. Choose one of {choices}.")
        await self._conversations.set_model(key, None if name == self._default_model else name)
        return CommandReply(f"This conversation now uses `{name}`.", public=True)

    async def image(self, user: ChatUser, key: ConversationKey, prompt: str) -> CommandReply:
        if self._images is None:
            raise BadInput("Image generation is switched off on this server (THREADWISE_IMAGES=false).")
        if not prompt.strip():
            raise BadInput("Describe the image, e.g. `/ai image a lighthouse at dusk, watercolour`.")
        now = datetime.now(UTC)
        message = IncomingMessage(
            key=key, user=user, text=prompt.strip(), event_id=f"image:{now.timestamp()}", received_at=now
        )
        message = await self._conversations.screen(message)
        conversation_id = await self._conversations.conversation_id(key)
        result = await self._images.generate(message, conversation_id=conversation_id)
        cost = f" ({format_usd(result.cost_micros)})" if result.cost_micros else ""
        return CommandReply(f"Image for: {message.text}{cost}", (result.attachment,), public=True)

    async def forget(self, user: ChatUser, key: ConversationKey, confirm: str) -> CommandReply:
        """`/ai forget` shows what would be erased; `/ai forget confirm` erases it."""
        if confirm.strip().lower() != "confirm":
            preview = await self._retention.erasure_preview(user.platform, user.user_id)
            if preview.empty:
                return CommandReply("I hold nothing of yours.")
            return CommandReply(
                f"This erases {preview.describe()}. Nothing can bring it back. "
                "To go ahead, run `/ai forget confirm`."
            )
        erased = await self._retention.erase(user.platform, user.user_id)  # cached windows reload themselves
        return CommandReply(f"Erased {erased.describe()}.")

    # ---- admins -------------------------------------------------------------------------------------------

    async def admin(self, user: ChatUser, key: ConversationKey, command: str, args: str) -> CommandReply:
        """`/ai-admin <command> <args>`; NotAuthorized for non-admins (recorded by AdminService)."""
        command = command.strip().lower()
        if not self.is_admin(user):  # before anything else: a refusal tells nothing and is recorded
            await self._admin.refuse(user, command or "help", None, "Only admins can do that.")
        # Operators (THREADWISE_ADMINS) act everywhere; a Slack workspace admin or Discord server manager acts
        # on their own workspace only: its channels, its budget, its report and moderation log.
        tenant = None if self._admin.is_operator(user) else (key.platform, key.workspace_id)
        try:
            words = shlex.split(args)
        except ValueError as exc:
            raise BadInput(f"I couldn't read that: {exc}.") from None
        if command == "quota":
            return await self._quota(user, key, words, tenant)
        if command == "report":
            return await self._report(user, words, tenant)
        if command in ("ban", "unban") and tenant is not None:
            await self._admin.refuse(user, command, None, OPERATORS_ONLY)
        if command == "ban":
            return await self._ban(user, key, words)
        if command == "unban":
            if len(words) != 1:
                raise BadInput("Usage: `unban <@user>`.")
            target = user_subject(words[0], key)
            removed = await self._admin.unban(user, target)
            return CommandReply(f"Unbanned {target}." if removed else f"{target} was not banned.")
        if command == "moderation":
            return await self._moderation(user, key, words, tenant)
        if command == "tools":
            return await self._tools_command(user, key, words, tenant)
        if command in ("help", ""):
            return CommandReply(ADMIN_HELP.format(periods=PERIOD_HELP))
        raise BadInput(f"Unknown admin command `{command}`. Use one of: {', '.join(ADMIN_COMMANDS)}.")

    async def _within(self, user: ChatUser, tenant: Tenant, subject: str, action: str) -> None:
        """Refuse (and record) a server admin's action on anything outside their workspace."""
        if tenant is None:
            return
        mine = f"{tenant[0]}:{tenant[1]}"
        if subject != mine and not subject.startswith(mine + ":"):
            await self._admin.refuse(user, action, subject, OUTSIDE_WORKSPACE)

    async def _quota(
        self, user: ChatUser, key: ConversationKey, words: list[str], tenant: Tenant
    ) -> CommandReply:
        action = words[0].lower() if words else "show"
        rest = words[1:]
        if action == "show":
            scope = rest[0].lower() if rest else None
            limits = await self._admin.quota_show(user, scope=scope)
            if tenant is not None:
                mine = f"{tenant[0]}:{tenant[1]}"
                limits = [
                    limit
                    for limit in limits
                    if not limit.overridden or limit.subject == mine or limit.subject.startswith(mine + ":")
                ]
            if not limits:
                return CommandReply("No budgets are set: usage is unlimited.")
            lines = [describe_limit(limit) + ("" if limit.overridden else " (default)") for limit in limits]
            return CommandReply("*Budgets*\n" + "\n".join(lines))
        if action not in ("set", "clear") or not rest:
            raise BadInput(
                "Usage: `quota show`, `quota set <scope> <subject> <period> <amount>`, `quota clear …`."
            )
        scope = rest[0].lower()
        rest = rest[1:]
        if scope == "global" and (not rest or rest[0].lower() in ("day", "month", "daily", "monthly")):
            rest = ["*", *rest]
        if len(rest) < 2:
            amount = " <amount>" if action == "set" else ""
            raise BadInput(f"Usage: `quota {action} {scope} <subject> <day|month>{amount}`.")
        subject = scope_subject(scope, rest[0], key)
        if tenant is not None and scope not in ("channel", "workspace"):
            await self._admin.refuse(user, f"quota.{action}", subject, OPERATORS_ONLY)
        await self._within(user, tenant, subject, f"quota.{action}")
        period = rest[1].lower()
        if action == "clear":
            removed = await self._admin.quota_clear(user, scope=scope, subject=subject, period=period)
            return CommandReply("Override removed; defaults apply." if removed else "There was no override.")
        amount = " ".join(rest[2:])
        usd_limit, token_limit = parse_amount(amount)
        limit = await self._admin.quota_set(
            user, scope=scope, subject=subject, period=period, usd_limit=usd_limit, token_limit=token_limit
        )
        return CommandReply("Set: " + describe_limit(limit))

    async def _report(self, user: ChatUser, words: list[str], tenant: Tenant) -> CommandReply:
        period, by = "today", "user"
        index = 0
        while index < len(words):
            word = words[index].lower()
            if word == "by" and index + 1 < len(words):
                by = words[index + 1].lower()
                index += 2
                continue
            period = word
            index += 1
        if by not in GROUPS:
            raise BadInput(f"A report is grouped by one of {', '.join(GROUPS)}, not `{by}`.")
        report = await self._admin.report(user, period=period, by=by, workspace=tenant)
        stamp = report.label.replace(" ", "-").replace("(", "").replace(")", "")
        files = (
            Attachment(f"threadwise-report-{stamp}-by-{by}.png", "image/png", to_png(report)),
            Attachment(f"threadwise-report-{stamp}-by-{by}.csv", "text/csv", to_csv(report).encode()),
        )
        return CommandReply("```\n" + to_text(report) + "\n```", files)

    async def _ban(self, user: ChatUser, key: ConversationKey, words: list[str]) -> CommandReply:
        if not words or words[0].lower() == "list":
            bans = await self._admin.bans(user)
            if not bans:
                return CommandReply("Nobody is banned.")
            lines = [
                f"{ban.platform}:{ban.user_id} "
                + (f"until {ban.expires_at:%Y-%m-%d %H:%M} UTC" if ban.expires_at else "until unbanned")
                + f" by {ban.banned_by}"
                + (f": {ban.reason}" if ban.reason else "")
                for ban in bans
            ]
            return CommandReply("*Bans*\n" + "\n".join(lines))
        target = user_subject(words[0], key)
        rest = words[1:]
        until = None
        if rest and re.fullmatch(r"\d+\s*[mhdw]", rest[0].lower()):
            until = self._clock() + parse_duration(rest[0])
            rest = rest[1:]
        info = await self._admin.ban(user, target, reason=" ".join(rest), until=until)
        when = f" until {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
        return CommandReply(f"Banned {target}{when}.")

    async def _moderation(
        self, user: ChatUser, key: ConversationKey, words: list[str], tenant: Tenant
    ) -> CommandReply:
        if words and words[0].lower() == "policy":
            return await self._moderation_policy_command(user, key, words[1:], tenant)
        limit, who, action = 20, None, None
        index = 0
        while index < len(words):
            word = words[index].lower()
            if word.isdigit():
                limit = int(word)
                index += 1
            elif word == "user" and index + 1 < len(words):
                who = user_subject(words[index + 1], key)
                index += 2
            elif word == "action" and index + 1 < len(words):
                action = words[index + 1].lower()
                index += 2
            else:
                raise BadInput(
                    f"I don't know `{words[index]}` here. "
                    "Usage: `moderation [count] [user @u] [action block]`."
                )
        events = await self._admin.moderation(user, limit=limit, user=who, action=action, workspace=tenant)
        if not events:
            return CommandReply("No moderation events match.")
        lines = "\n".join(describe_moderation(event) for event in events)
        return CommandReply("*Moderation log* (newest first)\n" + lines)

    async def _moderation_policy_command(
        self, user: ChatUser, key: ConversationKey, words: list[str], tenant: Tenant
    ) -> CommandReply:
        """`moderation policy <#channel|here> [show | clear | flag 0.3 block 0.6 | violence block 0.5 …]`"""
        if self._policies is None or self._moderation_policy is None:
            raise BadInput("Moderation is switched off on this server.")
        if not words:
            raise BadInput(
                "Usage: `moderation policy <#channel|here> "
                "[show|clear|flag 0.3 block 0.6|violence block 0.5]`."
            )
        channel = _channel(scope_subject("channel", words[0], key))
        name = ":".join(channel)
        await self._within(user, tenant, name, "moderation.policy")
        rest = [word.lower() for word in words[1:]] or ["show"]
        current = (await self._policies.get(channel)).moderation
        if rest == ["show"]:
            await self._admin.record(user, "moderation.policy.show", name, {})
            effective = self._moderation_policy.with_overrides(current)
            lines = [f"{name}: flag at {effective.default.flag:g}, block at {effective.default.block:g}"]
            lines += [
                f"  {c}: flag {t.flag:g}, block {t.block:g}"
                for c, t in sorted(effective.per_category.items())
            ]
            lines.append("(channel settings)" if current else "(server defaults)")
            return CommandReply("\n".join(lines))
        if rest == ["clear"]:
            await self._admin.record(user, "moderation.policy.clear", name, {})
            await self._policies.set_moderation(channel, None, by=f"{user.platform}:{user.user_id}")
            return CommandReply(f"{name} uses the server's moderation thresholds again.")
        changes = dict(current or {})
        index = 0
        while index < len(rest):
            category = None
            if rest[index] not in ("flag", "block"):
                category, index = rest[index], index + 1
            if index + 1 >= len(rest) or rest[index] not in ("flag", "block"):
                raise BadInput("Write thresholds like `flag 0.3 block 0.6` or `violence block 0.5`.")
            level, raw = rest[index], rest[index + 1]
            try:
                value = float(raw)
            except ValueError:
                raise BadInput(f"`{raw}` is not a number from 0 to 1.") from None
            if category is None:
                changes[level] = value
            else:
                changes[category] = {**changes.get(category, {}), level: value}
            index += 2
        try:
            self._moderation_policy.with_overrides(changes)
        except ValueError as exc:
            raise BadInput(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None
        await self._admin.record(user, "moderation.policy.set", name, {"policy": changes})
        await self._policies.set_moderation(channel, changes, by=f"{user.platform}:{user.user_id}")
        return CommandReply(f"Moderation thresholds of {name} set: {json.dumps(changes, sort_keys=True)}.")

    async def _tools_command(
        self, user: ChatUser, key: ConversationKey, words: list[str], tenant: Tenant
    ) -> CommandReply:
        if self._tools is None:
            raise BadInput("Tools are switched off on this server.")
        action = words[0].lower() if words else "show"
        if action == "show":
            channel = _channel(scope_subject("channel", words[1], key)) if len(words) > 1 else None
            if channel is None and tenant is not None:
                channel = (key.platform, key.workspace_id, key.channel_id)
            if channel is not None:
                await self._within(user, tenant, ":".join(channel), "tools.show")
            return CommandReply(await self._tools.show(user, channel))
        if action in ("set", "clear") and len(words) >= 2:
            channel = _channel(scope_subject("channel", words[1], key))
            await self._within(user, tenant, ":".join(channel), f"tools.{action}")
            if action == "clear":
                return CommandReply(await self._tools.clear(user, channel))
            names = [name.strip() for word in words[2:] for name in word.split(",") if name.strip()]
            if len(words) > 2 and words[2].lower() == "none":
                names = []
            return CommandReply(await self._tools.set(user, channel, names))
        raise BadInput(
            "Usage: `tools [show] [#channel]`, `tools set <#channel|here> calculator,current_time`, "
            "`tools set <#channel|here> none`, `tools clear <#channel|here>`."
        )


def user_subject(token: str, key: ConversationKey) -> str:
    """A user named in chat (a mention, ``platform:id`` or a bare id) as ``platform:user_id``."""
    found = _USER_MENTION.fullmatch(token.strip())
    if found:
        return f"{key.platform}:{found.group(1)}"
    if ":" in token:
        return token
    if not re.fullmatch(r"[A-Za-z0-9._-]+", token):
        raise BadInput(f"`{token}` is not a user: mention them or write platform:user_id.")
    return f"{key.platform}:{token}"


def scope_subject(scope: str, token: str, key: ConversationKey) -> str:
    """The budget subject for ``scope`` from what an admin typed (mentions, ``here``, ``*``)."""
    here = token.lower() in ("here", "this")
    if scope == "user":
        return user_subject(token, key)
    if scope == "channel":
        found = _CHANNEL_MENTION.fullmatch(token)
        if here:
            return f"{key.platform}:{key.workspace_id}:{key.channel_id}"
        if found:
            return f"{key.platform}:{key.workspace_id}:{found.group(1)}"
        return token if token.count(":") == 2 else f"{key.platform}:{key.workspace_id}:{token}"
    if scope == "workspace":
        if here:
            return f"{key.platform}:{key.workspace_id}"
        return token if ":" in token else f"{key.platform}:{token}"
    return token


def parse_amount(text: str) -> tuple[Decimal | None, int | None]:
    """``$5``, ``5``, ``5 usd``, ``200k tokens``, ``1.5m tokens``, ``unlimited`` -> (USD, tokens)."""
    cleaned = text.strip().lower()
    if cleaned in ("unlimited", "none", "off"):
        return None, None
    found = _TOKEN_AMOUNT.fullmatch(cleaned)
    if found:
        scale = {"": 1, "k": 1_000, "m": 1_000_000}[found.group(2).lower()]
        return None, int(Decimal(found.group(1)) * scale)
    number = cleaned.removeprefix("$").removesuffix("usd").removesuffix("$").strip()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise BadInput(f"`{text}` is not an amount: write $5, 200k tokens or unlimited.") from None
    if not amount.is_finite():
        raise BadInput(f"`{text}` is not an amount.")
    return amount, None


def _channel(subject: str) -> Channel:
    platform, workspace_id, channel_id = subject.split(":", 2)
    return (platform, workspace_id, channel_id)
