"""Built-in tools: ``current_time``, ``calculator`` (in calculator.py) and ``generate_image``."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

from core.domain.clock import Clock, utc_now
from core.domain.errors import BotError
from core.domain.types import IncomingMessage
from core.tools.registry import Tool, ToolContext, ToolError, ToolOutput

if TYPE_CHECKING:
    from core.llm.image_generation import ImageGenerator

Screen = Callable[[IncomingMessage], Awaitable[IncomingMessage]]


class CurrentTimeArgs(BaseModel):
    timezone: str = Field(description="IANA time zone name, e.g. Asia/Tokyo, Europe/Paris or UTC.")


def current_time_tool(clock: Clock = utc_now) -> Tool:
    async def run(args: CurrentTimeArgs, context: ToolContext) -> ToolOutput:
        name = args.timezone.strip()
        try:
            zone = UTC if name.upper() in ("UTC", "Z", "GMT") else ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"Unknown time zone {name!r}; use an IANA name like America/New_York.") from None
        now = clock().astimezone(zone)
        return ToolOutput(f"{now:%A %Y-%m-%d %H:%M:%S} ({name}, UTC{now:%z})")

    return Tool(
        name="current_time",
        description="The current date and time in a time zone.",
        arguments=CurrentTimeArgs,
        run=run,
        timeout=2.0,
    )


class GenerateImageArgs(BaseModel):
    prompt: str = Field(description="A detailed description of the image to create.")


def generate_image_tool(images: ImageGenerator, screen: Screen, *, per_turn: int = 2) -> Tool:
    """The model's way to the same image function as `/ai image`; the prompt is redacted and moderated like
    a user's message, and the image is priced, reserved against the budgets and attached to the reply.
    At most ``per_turn`` images per user message, so one turn cannot run up an image bill."""
    made: OrderedDict[str, int] = OrderedDict()  # event id -> images made for it (recent turns only)

    async def run(args: GenerateImageArgs, context: ToolContext) -> ToolOutput:
        prompt = args.prompt.strip()
        if not prompt:
            raise ToolError("The prompt is empty.")
        event = context.message.event_id
        if made.get(event, 0) >= per_turn:
            raise ToolError(f"At most {per_turn} images can be made for one message; tell the user so.")
        made[event] = made.get(event, 0) + 1
        made.move_to_end(event)
        while len(made) > 1024:
            made.popitem(last=False)
        message = dataclasses.replace(context.message, text=prompt, attachments=())
        try:
            message = await screen(message)
            result = await images.generate(message, conversation_id=context.conversation_id)
        except BotError as exc:  # refused by moderation or the budget, or the provider failed
            raise ToolError(exc.user_message) from None
        return ToolOutput(
            "The image was generated and is attached to your reply; do not repeat it as a link.",
            (result.attachment,),
        )

    return Tool(
        name="generate_image",
        description="Create an image from a text description. The image is shown to the user with the reply.",
        arguments=GenerateImageArgs,
        run=run,
        timeout=120.0,
    )
