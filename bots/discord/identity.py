"""Who is talking and in which conversation, in core terms (ChatUser, ConversationKey).

Discord conversations: a thread is ``("discord", guild, parent channel, thread)``; a DM is
``("discord", "@dm", dm channel, dm channel)``; a plain channel (a command used outside a thread) is
``("discord", guild, channel, channel)``.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from core.domain.types import ChatUser, ConversationKey

PLATFORM = "discord"
DM = "@dm"
THREAD_NAME_LIMIT = 100


def chat_user(user: discord.User | discord.Member, *, admin: bool = False) -> ChatUser:
    return ChatUser(PLATFORM, str(user.id), user.display_name, is_admin=admin)


def member_is_admin(user: discord.User | discord.Member) -> bool:
    """Manage Server in the guild (from roles; the owner and administrators have every permission)."""
    return isinstance(user, discord.Member) and user.guild_permissions.manage_guild


def interaction_is_admin(interaction: discord.Interaction[Any]) -> bool:
    """Manage Server as Discord resolved it for this interaction (the member's ``permissions`` field)."""
    return interaction.guild is not None and interaction.permissions.manage_guild


def thread_key(guild_id: int, parent_id: int, thread_id: int) -> ConversationKey:
    return ConversationKey(PLATFORM, str(guild_id), str(parent_id), str(thread_id))


def dm_key(channel_id: int) -> ConversationKey:
    return ConversationKey(PLATFORM, DM, str(channel_id), str(channel_id))


def channel_key(channel: Any, guild: discord.Guild | None) -> ConversationKey:
    """The conversation a command used in ``channel`` belongs to."""
    if guild is None:
        return dm_key(channel.id)
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return thread_key(guild.id, channel.parent_id, channel.id)
    return ConversationKey(PLATFORM, str(guild.id), str(channel.id), str(channel.id))


def without_mention(text: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", "", text).strip()


def readable_text(message: discord.Message, bot_id: int) -> str:
    """The message as the model should read it: the bot's own mention dropped, other people's mentions as
    ``@name`` rather than raw ids."""
    text = without_mention(message.content, bot_id)
    for user in message.mentions:
        if user.id != bot_id:
            text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
    return text


def thread_name(text: str) -> str:
    """A thread title from the first line of a prompt, at most 100 characters."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    if not first:
        return "Threadwise conversation"
    return first if len(first) <= THREAD_NAME_LIMIT else first[: THREAD_NAME_LIMIT - 1].rstrip() + "…"
