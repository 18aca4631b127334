"""Limits on what a user can send: text length, number, size and type of attachments.

Each refusal says which limit and by how much, so the user can fix the message; nothing is stored or sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.errors import BadInput
from core.domain.types import IncomingMessage


@dataclass(frozen=True, slots=True)
class InputLimits:
    max_text_chars: int = 20_000
    max_attachments: int = 4
    max_attachment_bytes: int = 20 * 1024 * 1024  # OpenAI's limit for one image input


class InputLimitGuard:
    """A TurnGuard: refuses over-long text and too many or too large attachments."""

    def __init__(self, limits: InputLimits) -> None:
        self._limits = limits

    async def check(self, message: IncomingMessage) -> IncomingMessage:
        limits = self._limits
        if len(message.text) > limits.max_text_chars:
            raise BadInput(
                f"Your message is {len(message.text):,} characters long; the limit is "
                f"{limits.max_text_chars:,}. Please shorten it or attach it as a text file."
            )
        if len(message.attachments) > limits.max_attachments:
            raise BadInput(
                f"You attached {len(message.attachments)} files; at most {limits.max_attachments} are read "
                "per message."
            )
        for attachment in message.attachments:
            if len(attachment.data) > limits.max_attachment_bytes:
                raise BadInput(
                    f"{attachment.name!r} is {_megabytes(len(attachment.data))}; files up to "
                    f"{_megabytes(limits.max_attachment_bytes)} are accepted."
                )
        return message  # whether a file can be read at all is decided where it is read (turn/user_message)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
