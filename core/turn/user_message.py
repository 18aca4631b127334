"""The new message of a turn as the model reads it: text, inlined text files, images (DESIGN.md §3 step 5)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from core.domain.errors import BadInput
from core.domain.ports import TurnMessage, UserImage
from core.domain.types import Attachment, IncomingMessage
from core.llm.images import sniff_image
from core.llm.tokens import TokenCounter
from core.turn.history import wire_message

MAX_INLINE_TEXT_CHARS = 100_000
ON_LOOP_MAX_CHARS = 20_000  # a message this small is decoded and counted in well under a millisecond


@dataclass(frozen=True, slots=True)
class UserMessage:
    message: TurnMessage
    images: list[UserImage]


async def build_user_message(message: IncomingMessage, counter: TokenCounter, model: str) -> UserMessage:
    """``user_message`` off the event loop when the message is large (attached files: decoding, sniffing and
    counting hundreds of thousands of characters cost tens to hundreds of milliseconds); the same counts."""
    if not message.attachments and len(message.text) <= ON_LOOP_MAX_CHARS:
        return user_message(message, counter, model)
    return await asyncio.to_thread(user_message, message, counter, model)


def user_message(message: IncomingMessage, counter: TokenCounter, model: str) -> UserMessage:
    """The user's wire message with its exact token count for ``model``; raises BadInput for what the model
    cannot read (an empty message, a binary file that is no image, a text file too long to inline)."""
    parts: list[dict[str, Any]] = []
    if message.text:
        parts.append({"type": "text", "text": message.text})
    images: list[UserImage] = []
    for attachment in message.attachments:
        image = _image(attachment)
        if image is not None:
            parts.append({"type": "image", "attachment": len(images), "detail": "auto"})
            images.append(image)
        else:
            parts.append({"type": "text", "text": _inline_text(attachment)})
    if not parts:
        raise BadInput("Your message is empty.")
    wire = wire_message("user", parts, [(image.mime, image.data) for image in images])
    tokens = counter.count_message(model, wire, [(image.width, image.height) for image in images])
    return UserMessage(TurnMessage("user", parts, wire, tokens), images)


def _image(attachment: Attachment) -> UserImage | None:
    info = sniff_image(attachment.data)
    if info is None:
        return None
    return UserImage(attachment.name, info.mime, attachment.data, info.width, info.height)


def _inline_text(attachment: Attachment) -> str:
    try:
        text = attachment.data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(
            f"I can't read {attachment.name!r}: only images (PNG, JPEG, GIF, WebP) and text files "
            "are supported."
        ) from None
    if len(text) > MAX_INLINE_TEXT_CHARS:
        raise BadInput(f"{attachment.name!r} is too long to read ({len(text):,} characters).")
    return f"\n\nAttached file {attachment.name}:\n```\n{text}\n```"
