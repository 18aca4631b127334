"""The chat command vocabulary of DESIGN.md §6 (`/ai …`, `/ai-admin …`), shared by every adapter.

Adapters parse only what their platform hands them (Slack: one text; Discord: typed options), turn their
mention syntax into bare ids, call these methods and render the structured ``Reply`` (core/commands/results).
Admin rights come from the platform identity (``ChatUser.is_admin``) and ``THREADWISE_ADMINS``, never from
message text; every admin call is recorded by ``AdminService``. A banned user is refused every `/ai` command
with the ban's message. A conversation is shared by everyone in its thread: only whoever started it, an admin
of its workspace or an operator may reset it or change its model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.admin.export import ConversationExports
from core.admin.personas import Personas
from core.admin.retention import Retention
from core.admin.service import AdminService
from core.commands.admin import AdminCommands
from core.commands.admission import Admission
from core.commands.export import ExportCommand
from core.commands.home import Home, HomeView
from core.commands.results import Reply
from core.commands.user import UserCommands
from core.domain.clock import Clock, utc_now
from core.domain.errors import BadInput, NotAuthorized
from core.domain.types import ChatUser, ConversationKey
from core.guards.bans import BanGuard
from core.guards.channel_policy import ChannelPolicies
from core.guards.moderation import ModerationPolicy
from core.guards.redactor import Redactor
from core.money.budgets import Budgets
from core.tools.governance import ToolGovernance
from core.turn.service import ConversationService

if TYPE_CHECKING:
    from core.llm.image_generation import ImageGenerator


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
        admission: Admission | None = None,
        bans: BanGuard | None = None,
        exports: ConversationExports | None = None,
        default_model: str,
        models: Sequence[str] = (),
        clock: Clock = utc_now,
        personas: Personas | None = None,
    ) -> None:
        self._conversations = conversations
        self._admin = admin
        self._redactor = redactor
        self._admission = admission
        self._bans = bans
        self._user = UserCommands(
            conversations=conversations,
            budgets=budgets,
            images=images,
            retention=retention,
            default_model=default_model,
            models=models,
            clock=clock,
        )
        self._home = Home(
            budgets=budgets, admin=admin, default_model=default_model, models=models, clock=clock
        )
        self._export = (
            ExportCommand(exports, record=admin.record, default_model=default_model, clock=clock)
            if exports is not None
            else None
        )
        self._admin_commands = AdminCommands(
            admin=admin,
            tools=tools,
            policies=policies,
            moderation=moderation,
            clock=clock,
            personas=personas,
        )

    async def admit(self, platform: str, user_id: str, delivery_id: str | None) -> bool:
        """Call first, before any platform call for the user: False for a replayed delivery (do nothing;
        ``delivery_id`` None: none to tell), RateLimited when ``user_id`` sends commands too fast."""
        if self._admission is None:
            return True
        return await self._admission.admit(platform, user_id, delivery_id)

    def is_admin(self, user: ChatUser) -> bool:
        return self._admin.is_admin(user)

    def display(self, text: str) -> str:
        """A user's text as the bot may repeat it in a channel: redacted like everything the core stores."""
        return self._redactor.redact(text).text if self._redactor is not None else text

    async def is_conversation(self, key: ConversationKey) -> bool:
        return await self._conversations.exists(key)

    # ---- everyone: `/ai …` ---------------------------------------------------------------------------------

    async def help(self, user: ChatUser) -> Reply:
        await self._not_banned(user)
        return self._user.help(admin=self.is_admin(user))

    async def reset(self, user: ChatUser, key: ConversationKey) -> Reply:
        await self._may_change(user, key, "reset")
        return await self._user.reset(user, key)

    async def usage(self, user: ChatUser, key: ConversationKey) -> Reply:
        await self._not_banned(user)
        return await self._user.usage(user, key)

    async def home(self, user: ChatUser, key: ConversationKey) -> HomeView:
        """``user``'s home page in ``key``'s workspace (usage, budgets left, models; admins: the workspace's
        spend); a banned user gets the ban's message (BotError) instead."""
        await self._not_banned(user)
        return await self._home.view(user, key)

    async def set_model(self, user: ChatUser, key: ConversationKey, name: str) -> Reply:
        if name.strip():
            await self._may_change(user, key, "change the model of")
        else:  # only asks which model is used
            await self._not_banned(user)
        return await self._user.set_model(user, key, name)

    async def image(self, user: ChatUser, key: ConversationKey, prompt: str) -> Reply:
        await self._not_banned(user)
        return await self._user.image(user, key, prompt)

    async def forget(self, user: ChatUser, key: ConversationKey, confirm: str) -> Reply:
        """`/ai forget` shows what would be erased; `/ai forget confirm` erases it."""
        await self._not_banned(user)
        return await self._user.forget(user, key, confirm)

    async def export(self, user: ChatUser, key: ConversationKey) -> Reply:
        """`/ai export`: the conversation of ``key`` as a Markdown file, for whoever took part in it or an
        admin; the reply is for the caller only."""
        await self._not_banned(user)
        if self._export is None:
            raise BadInput("Exporting conversations is not available on this server.")
        return await self._export.run(user, key, admin=self.is_admin(user))

    async def _not_banned(self, user: ChatUser) -> None:
        if self._bans is not None:  # commands are few: a ban set by another process applies at once
            await self._bans.refuse_if_banned(user, fresh=True)

    async def _may_change(self, user: ChatUser, key: ConversationKey, what: str) -> None:
        """Whoever started the conversation of ``key``, an admin of its workspace (the platform says so of
        the caller there) or an operator; anyone when nobody is known to have started it."""
        await self._not_banned(user)
        if self.is_admin(user):
            return
        starter = await self._conversations.started_by(key)
        if starter is not None and starter != user.user_id:
            raise NotAuthorized(
                f"Only whoever started this conversation, or an admin of this workspace, can {what} it. "
                "Start your own thread to talk to me with other settings."
            )

    # ---- admins: `/ai-admin …` -----------------------------------------------------------------------------

    async def admin(self, user: ChatUser, key: ConversationKey, command: str, args: str) -> Reply:
        """`/ai-admin <command> <args>`, args with bare ids for people and channels; NotAuthorized for
        non-admins (recorded by AdminService)."""
        return await self._admin_commands.run(user, key, command, args)
