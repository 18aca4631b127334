"""`Commands` as a chat adapter drives them, for tests that call the core's command vocabulary directly:
mentions in admin arguments made bare ids first, replies rendered for the platform afterwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bots.bootstrap import Core
from bots.slack.mentions import neutral_args as slack_neutral_args
from bots.slack.render import render as slack_render
from core.commands.dispatch import Commands
from core.commands.results import Reply
from core.domain.types import Attachment, ChatUser, ConversationKey


@dataclass(frozen=True, slots=True)
class Shown:
    """A reply as the platform shows it."""

    text: str
    attachments: tuple[Attachment, ...]
    public: bool


class RenderedCommands:
    def __init__(
        self,
        commands: Commands,
        *,
        neutral: Callable[[str], str] = slack_neutral_args,
        render: Callable[[Reply], str] = slack_render,
    ) -> None:
        self._commands = commands
        self._neutral = neutral
        self._render = render

    def _shown(self, reply: Reply) -> Shown:
        return Shown(self._render(reply), reply.attachments, reply.public)

    async def is_conversation(self, key: ConversationKey) -> bool:
        return await self._commands.is_conversation(key)

    async def help(self, user: ChatUser) -> Shown:
        return self._shown(await self._commands.help(user))

    async def reset(self, user: ChatUser, key: ConversationKey) -> Shown:
        return self._shown(await self._commands.reset(user, key))

    async def usage(self, user: ChatUser, key: ConversationKey) -> Shown:
        return self._shown(await self._commands.usage(user, key))

    async def set_model(self, user: ChatUser, key: ConversationKey, name: str) -> Shown:
        return self._shown(await self._commands.set_model(user, key, name))

    async def image(self, user: ChatUser, key: ConversationKey, prompt: str) -> Shown:
        return self._shown(await self._commands.image(user, key, prompt))

    async def forget(self, user: ChatUser, key: ConversationKey, confirm: str) -> Shown:
        return self._shown(await self._commands.forget(user, key, confirm))

    async def export(self, user: ChatUser, key: ConversationKey) -> Shown:
        return self._shown(await self._commands.export(user, key))

    async def admin(self, user: ChatUser, key: ConversationKey, command: str, args: str) -> Shown:
        return self._shown(await self._commands.admin(user, key, command, self._neutral(args)))


def slack(core: Core) -> RenderedCommands:
    """The core's commands as the Slack adapter calls them."""
    return RenderedCommands(core.commands)
