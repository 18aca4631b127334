"""Frozen values that cross the core/adapter boundary (DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
