"""Image generation with the OpenAI images API: priced, reserved against budgets, recorded in the ledger."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any, cast

import openai

from core.domain.errors import BotError, LLMUnavailable
from core.domain.types import Attachment, IncomingMessage
from core.llm.client import LLMClient
from core.llm.errors import map_openai_error
from core.llm.images import sniff_image
from core.money.budgets import Budgets

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImageOptions:
    model: str = "gpt-image-1"
    size: str = "1024x1024"
    quality: str = "medium"


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    attachment: Attachment
    cost_micros: int
    revised_prompt: str | None


class ImageGenerator:
    """One image per call: the price is held before the request and settled (or released) after it."""

    def __init__(self, llm: LLMClient, budgets: Budgets | None, options: ImageOptions) -> None:
        self._llm = llm
        self._budgets = budgets
        self.options = options

    async def generate(
        self, message: IncomingMessage, *, conversation_id: int | None = None
    ) -> GeneratedImage:
        """``message.text`` is the prompt (already screened by the turn guards)."""
        options = self.options
        hold = None
        if self._budgets is not None:
            hold = await self._budgets.reserve_image(
                message, model=options.model, size=options.size, quality=options.quality
            )
        try:
            data, revised = await self._request(message.text)
        except BaseException:
            if hold is not None and self._budgets is not None:
                await self._budgets.release(hold)
            raise
        micros = 0
        if hold is not None and self._budgets is not None:
            micros = await self._budgets.settle_image(
                hold,
                model=options.model,
                size=options.size,
                quality=cast(Any, options.quality),  # the SDK lists known qualities; endpoints vary
                conversation_id=conversation_id,
            )
        info = sniff_image(data)
        if info is None:
            raise BotError("The image service returned something that is not an image.")
        attachment = Attachment(name=f"image.{info.mime.split('/')[1]}", mime=info.mime, data=data)
        return GeneratedImage(attachment, micros, revised)

    async def _request(self, prompt: str) -> tuple[bytes, str | None]:
        options = self.options
        # gpt-image models always answer base64 and reject response_format; DALL·E defaults to URLs
        extra_body = {"response_format": "b64_json"} if options.model.startswith("dall-e") else None
        try:
            response = await self._llm.sdk.images.generate(
                model=options.model,
                prompt=prompt,
                size=options.size,
                quality=cast(Any, options.quality),  # the SDK lists known qualities; endpoints vary
                n=1,
                extra_body=extra_body,
            )
        except openai.OpenAIError as exc:
            raise map_openai_error(exc, options.model) from exc
        item = response.data[0] if response.data else None
        if item is None or not item.b64_json:
            raise LLMUnavailable("The image service returned no image. Please try again.")
        try:
            data = base64.b64decode(item.b64_json, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BotError("The image service returned a broken image.", detail=str(exc)) from exc
        return data, item.revised_prompt
