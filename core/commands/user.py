"""`/ai …` for everyone: help, reset, usage, model, image, forget (ask and chat are turns)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.admin.retention import Retention
from core.commands.describe import describe_usage
from core.commands.echo import CAPTION_CHARS, echoed
from core.commands.help import ADMIN_HELP, USER_HELP
from core.commands.results import Code, Heading, Reply, codes, line, say
from core.domain.clock import Clock
from core.domain.errors import BadInput
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.money.budgets import Budgets
from core.money.pricing import format_usd
from core.turn.service import ConversationService

if TYPE_CHECKING:
    from core.llm.image_generation import ImageGenerator

IMAGE_PROMPT_CHARS = 4_000  # DALL·E 3's limit (gpt-image-1 takes 32,000): ample for any picture
DALL_E_2_PROMPT_CHARS = 1_000


def image_prompt_limit(model: str) -> int:
    """The longest image description ``/ai image`` takes for ``model``, in characters."""
    return DALL_E_2_PROMPT_CHARS if model.startswith("dall-e-2") else IMAGE_PROMPT_CHARS


class UserCommands:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        budgets: Budgets,
        images: ImageGenerator | None,
        retention: Retention,
        default_model: str,
        models: Sequence[str],
        clock: Clock,
    ) -> None:
        self._conversations = conversations
        self._budgets = budgets
        self._images = images
        self._retention = retention
        self._default_model = default_model
        self._models = tuple(models)
        self._clock = clock

    def help(self, *, admin: bool) -> Reply:
        return Reply(USER_HELP + ADMIN_HELP if admin else USER_HELP)

    async def reset(self, user: ChatUser, key: ConversationKey) -> Reply:
        hidden = await self._conversations.reset(key)
        if not hidden:
            return say("There is nothing to forget here yet.")
        return say(f"Done: I no longer see the {hidden} earlier messages of this conversation.")

    async def usage(self, user: ChatUser, key: ConversationKey) -> Reply:
        usage = await self._budgets.usage_of(user, key)
        return Reply((Heading("Your usage"), *describe_usage(usage, self._clock())))

    async def set_model(self, user: ChatUser, key: ConversationKey, name: str) -> Reply:
        name = name.strip()
        allowed = self._models or (self._default_model,)
        if not name:
            current = await self._conversations.model_of(key)
            return say("This conversation uses ", Code(current), ". Available: ", *codes(allowed), ".")
        if name not in allowed:
            choices = ", ".join(f"`{m}`" for m in allowed)
            raise BadInput(f"`{echoed(name)}` is not available here. Choose one of {choices}.")
        # Stored even when it is the default: the conversation's own choice beats its channel's persona.
        await self._conversations.set_model(key, name, user.user_id)
        return say("This conversation now uses ", Code(name), ".", public=True)

    async def image(self, user: ChatUser, key: ConversationKey, prompt: str) -> Reply:
        if self._images is None:
            raise BadInput("Image generation is switched off on this server (THREADWISE_IMAGES=false).")
        if not prompt.strip():
            raise BadInput("Describe the image, e.g. `/ai image a lighthouse at dusk, watercolour`.")
        limit = image_prompt_limit(self._images.options.model)
        if len(prompt.strip()) > limit:  # refused before anything is screened, reserved or paid for
            raise BadInput(
                f"That description is {len(prompt.strip()):,} characters long; "
                f"an image description may have at most {limit:,}. Please shorten it."
            )
        now = datetime.now(UTC)
        message = IncomingMessage(
            key=key, user=user, text=prompt.strip(), event_id=f"image:{now.timestamp()}", received_at=now
        )
        message = await self._conversations.screen(message)
        conversation_id = await self._conversations.conversation_id(key, user.user_id)
        result = await self._images.generate(message, conversation_id=conversation_id)
        cost = f" ({format_usd(result.cost_micros)})" if result.cost_micros else ""
        caption = f"Image for: {echoed(message.text, CAPTION_CHARS)}{cost}"
        return Reply((line(caption),), (result.attachment,), public=True)

    async def forget(self, user: ChatUser, key: ConversationKey, confirm: str) -> Reply:
        """`/ai forget` shows what would be erased; `/ai forget confirm` erases it."""
        if confirm.strip().lower() != "confirm":
            preview = await self._retention.erasure_preview(user.platform, user.user_id)
            if preview.empty:
                return say("I hold nothing of yours.")
            return say(
                f"This erases {preview.describe()}. Nothing can bring it back. To go ahead, run ",
                Code("/ai forget confirm"),
                ".",
            )
        erased = await self._retention.erase(user.platform, user.user_id)  # cached windows reload themselves
        return say(f"Erased {erased.describe()}.")
