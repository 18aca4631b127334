"""What people type after a command, read into values: subcommands, amounts, subjects, filters, thresholds.

Only neutral forms are read here: bare ids, ``platform:id``, ``here``, ``*``. Adapters turn their platform's
mention syntax (Slack ``<@U1|name>``, Discord ``<@!1>`` …) into a bare id before the text reaches the core.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.commands.echo import echoed
from core.domain.errors import BadInput
from core.domain.types import ConversationKey
from core.guards.channel_policy import Channel

AI_COMMANDS = ("ask", "chat", "reset", "usage", "model", "image", "forget", "export", "help")
ADMIN_COMMANDS = ("quota", "report", "ban", "unban", "moderation", "tools", "prompt")

_TOKEN_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([km]?)\s*tokens?", re.IGNORECASE)
_USER_ID = re.compile(r"[A-Za-z0-9._-]+")
_DURATION = re.compile(r"\d+\s*[mhdw]")


def parse_ai_text(text: str) -> tuple[str, str]:
    """The text after `/ai` on Slack: a subcommand and its argument; anything else is a question (ask)."""
    stripped = text.strip()
    if not stripped:
        return "help", ""
    head, _, rest = stripped.partition(" ")
    if head.lower() in AI_COMMANDS:
        return head.lower(), rest.strip()
    return "ask", stripped


def words_of(args: str) -> list[str]:
    """Arguments split as a shell would, so a reason or a name may be quoted."""
    try:
        return shlex.split(args)
    except ValueError as exc:
        raise BadInput(f"I couldn't read that: {exc}.") from None


def user_subject(token: str, key: ConversationKey) -> str:
    """A user named in chat (``@id`` as adapters pass mentions, ``platform:id`` or a bare id, in ``key``'s
    platform) as ``platform:user_id``; a channel (``#id``) is no user."""
    if ":" in token:
        return token
    token = token.removeprefix("@")
    if not _USER_ID.fullmatch(token):
        raise BadInput(f"`{echoed(token)}` is not a user: mention them or write platform:user_id.")
    return f"{key.platform}:{token}"


def scope_subject(scope: str, token: str, key: ConversationKey) -> str:
    """The budget subject for ``scope`` from what an admin typed (an id, ``here``, ``*``)."""
    here = token.lower() in ("here", "this")
    if scope == "user":
        return user_subject(token, key)
    if scope == "channel":
        if here:
            return f"{key.platform}:{key.workspace_id}:{key.channel_id}"
        token = token.removeprefix("#")
        return token if token.count(":") == 2 else f"{key.platform}:{key.workspace_id}:{token}"
    if scope == "workspace":
        if here:
            return f"{key.platform}:{key.workspace_id}"
        return token if ":" in token else f"{key.platform}:{token}"
    return token


def channel_of(token: str, key: ConversationKey) -> Channel:
    """A channel named in chat (an id, ``here``, ``platform:workspace:channel``) as a policy key."""
    platform, workspace_id, channel_id = scope_subject("channel", token, key).split(":", 2)
    return (platform, workspace_id, channel_id)


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
        raise BadInput(f"`{echoed(text)}` is not an amount: write $5, 200k tokens or unlimited.") from None
    if not amount.is_finite():
        raise BadInput(f"`{echoed(text)}` is not an amount.")
    return amount, None


def is_duration(word: str) -> bool:
    """``30m``, ``12h``, ``7d``, ``2w``: how long a ban lasts."""
    return _DURATION.fullmatch(word.lower()) is not None


def parse_report(words: list[str]) -> tuple[str, str]:
    """``[period] [by group]`` in any order -> (period, group); defaults today by user."""
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
    return period, by


@dataclass(frozen=True, slots=True)
class ModerationFilter:
    limit: int = 20
    user: str | None = None  # platform:user_id
    action: str | None = None


def parse_moderation_filter(words: list[str], key: ConversationKey) -> ModerationFilter:
    """``[count] [user <id>] [action block]`` in any order."""
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
                f"I don't know `{echoed(words[index])}` here. "
                "Usage: `moderation [count] [user @u] [action block]`."
            )
    return ModerationFilter(limit, who, action)


def parse_thresholds(words: list[str], current: dict[str, Any]) -> dict[str, Any]:
    """``flag 0.3 block 0.6 violence block 0.5`` (lower case) applied over ``current`` overrides."""
    changes = dict(current)
    index = 0
    while index < len(words):
        category = None
        if words[index] not in ("flag", "block"):
            category, index = words[index], index + 1
        if index + 1 >= len(words) or words[index] not in ("flag", "block"):
            raise BadInput("Write thresholds like `flag 0.3 block 0.6` or `violence block 0.5`.")
        level, raw = words[index], words[index + 1]
        try:
            value = float(raw)
        except ValueError:
            raise BadInput(f"`{echoed(raw)}` is not a number from 0 to 1.") from None
        if category is None:
            changes[level] = value
        else:
            changes[category] = {**changes.get(category, {}), level: value}
        index += 2
    return changes


def tool_names(words: list[str]) -> list[str]:
    """``calculator,current_time`` (possibly over several words) or ``none``."""
    if words and words[0].lower() == "none":
        return []
    return [name.strip() for word in words for name in word.split(",") if name.strip()]
