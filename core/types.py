"""Frozen values that cross the core/adapter boundary, and the protocol adapters implement."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.errors import BotError


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """One conversation: a Slack thread, a Discord thread or DM, a console session."""

    platform: str
    workspace_id: str
    channel_id: str
    thread_id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.workspace_id}/{self.channel_id}/{self.thread_id}"


@dataclass(frozen=True, slots=True)
class ChatUser:
    platform: str
    user_id: str
    display_name: str
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    mime: str
    data: bytes = field(repr=False)


def attached_text(attachment: Attachment) -> str | None:
    """The text of an attached text file (code, logs), or None for images and other binary files."""
    if attachment.mime.startswith("image/"):
        return None
    try:
        return attachment.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    key: ConversationKey
    user: ChatUser
    text: str
    event_id: str
    received_at: datetime
    attachments: tuple[Attachment, ...] = ()

    def all_text(self) -> str:
        """The message and its attached text files, as one text (what guards must look at)."""
        texts = [self.text, *(t for a in self.attachments if (t := attached_text(a)) is not None)]
        return "\n\n".join(text for text in texts if text)


class Replier(Protocol):
    """How the core talks back to the user; each adapter implements it for its platform."""

    async def start(self) -> None:
        """A reply is being prepared (typing indicator, placeholder message, status)."""

    async def update(self, text: str) -> None:
        """The reply so far (full text, not a delta). Adapters throttle edits to their platform's limits."""

    async def status(self, text: str) -> None:
        """A short progress note while no text streams, e.g. "Using calculator…"."""

    async def finish(self, text: str) -> None:
        """The complete reply."""

    async def attach(self, attachment: Attachment) -> None:
        """Send a file (generated image, chart, CSV) with the reply."""

    async def error(self, error: BotError) -> None:
        """The turn failed; show ``error.user_message``."""
