"""Who runs an admin command and what they may touch: operators (THREADWISE_ADMINS) act everywhere; a Slack
workspace admin or Discord server manager acts on their own workspace only (its channels, its budget, its
report and moderation log)."""

from __future__ import annotations

from dataclasses import dataclass

from core.admin.service import AdminService
from core.domain.types import ChatUser, ConversationKey

OPERATORS_ONLY = (
    "Only the operators listed in THREADWISE_ADMINS can do that: bans and user or global budgets apply to "
    "every workspace. As a workspace admin you manage your own channels and workspace."
)
OUTSIDE_WORKSPACE = "As a workspace admin you can manage only the channels and budget of your own workspace."


@dataclass(frozen=True, slots=True)
class AdminCall:
    user: ChatUser
    key: ConversationKey
    tenant: tuple[str, str] | None  # (platform, workspace_id) a workspace admin is limited to; None: operator

    def owns(self, subject: str) -> bool:
        """Whether ``subject`` (``platform:workspace[:channel]``) is inside the caller's reach."""
        if self.tenant is None:
            return True
        mine = f"{self.tenant[0]}:{self.tenant[1]}"
        return subject == mine or subject.startswith(mine + ":")


async def within(admin: AdminService, call: AdminCall, subject: str, action: str) -> None:
    """Refuse (and record) a workspace admin's action on anything outside their workspace."""
    if not call.owns(subject):
        await admin.refuse(call.user, action, subject, OUTSIDE_WORKSPACE)


async def operators_only(admin: AdminService, call: AdminCall, action: str, subject: str | None) -> None:
    """Refuse (and record) what only operators may do when the caller is a workspace admin."""
    if call.tenant is not None:
        await admin.refuse(call.user, action, subject, OPERATORS_ONLY)
