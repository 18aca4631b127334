"""Prices of model calls and images, in integer micro-dollars (1 USD = 1,000,000 µ$); never floats.

Defaults were taken from OpenAI's public price list (standard tier) on 2025-08-07; operators add or change
models with an override file (``THREADWISE_PRICES_FILE``, TOML), e.g. zero prices for a self-hosted model.
A model that is in neither is priced at the configured fallback and logged once, never silently free.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PRICES_TAKEN_ON = "2025-08-07"
MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per 1M tokens


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Micro-dollars per 1M tokens (so $0.15 per 1M tokens is 150_000)."""

    input: int
    cached_input: int
    output: int


def usd(amount: str | Decimal) -> int:
    """Micro-dollars of a USD amount given as text or Decimal, rounded up to a whole micro-dollar."""
    value = Decimal(amount) * MICROS_PER_USD
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def format_usd(micros: int) -> str:
    """Exact: $2.50 for whole cents, else every significant decimal ($0.99979, $0.00042)."""
    value = Decimal(micros) / MICROS_PER_USD
    if micros % 10_000 == 0:
        return f"${value:,.2f}"
    return f"${value.normalize():,f}"


def _per_million(input_usd: str, cached_usd: str | None, output_usd: str) -> ModelPrice:
    return ModelPrice(
        usd(input_usd), usd(cached_usd if cached_usd is not None else input_usd), usd(output_usd)
    )


# Chat models: USD per 1M input / cached input / output tokens.
DEFAULT_MODEL_PRICES: Mapping[str, ModelPrice] = {
    "gpt-5": _per_million("1.25", "0.125", "10.00"),
    "gpt-5-mini": _per_million("0.25", "0.025", "2.00"),
    "gpt-5-nano": _per_million("0.05", "0.005", "0.40"),
    "gpt-4.1": _per_million("2.00", "0.50", "8.00"),
    "gpt-4.1-mini": _per_million("0.40", "0.10", "1.60"),
    "gpt-4.1-nano": _per_million("0.10", "0.025", "0.40"),
    "gpt-4o": _per_million("2.50", "1.25", "10.00"),
    "gpt-4o-mini": _per_million("0.15", "0.075", "0.60"),
    "o3": _per_million("2.00", "0.50", "8.00"),
    "o3-mini": _per_million("1.10", "0.55", "4.40"),
    "o4-mini": _per_million("1.10", "0.275", "4.40"),
    "o1": _per_million("15.00", "7.50", "60.00"),
    "gpt-4-turbo": _per_million("10.00", None, "30.00"),
    "gpt-3.5-turbo": _per_million("0.50", None, "1.50"),
}

# Images: USD per image by model, then "<quality>:<size>".
DEFAULT_IMAGE_PRICES: Mapping[str, Mapping[str, int]] = {
    "gpt-image-1": {
        "low:1024x1024": usd("0.011"),
        "medium:1024x1024": usd("0.042"),
        "high:1024x1024": usd("0.167"),
        "low:1024x1536": usd("0.016"),
        "medium:1024x1536": usd("0.063"),
        "high:1024x1536": usd("0.25"),
        "low:1536x1024": usd("0.016"),
        "medium:1536x1024": usd("0.063"),
        "high:1536x1024": usd("0.25"),
    },
    "gpt-image-1-mini": {
        "low:1024x1024": usd("0.005"),
        "medium:1024x1024": usd("0.011"),
        "high:1024x1024": usd("0.036"),
        "low:1024x1536": usd("0.006"),
        "medium:1024x1536": usd("0.015"),
        "high:1024x1536": usd("0.052"),
        "low:1536x1024": usd("0.006"),
        "medium:1536x1024": usd("0.015"),
        "high:1536x1024": usd("0.052"),
    },
    "dall-e-3": {
        "standard:1024x1024": usd("0.04"),
        "standard:1024x1792": usd("0.08"),
        "standard:1792x1024": usd("0.08"),
        "hd:1024x1024": usd("0.08"),
        "hd:1024x1792": usd("0.12"),
        "hd:1792x1024": usd("0.12"),
    },
    "dall-e-2": {
        "standard:256x256": usd("0.016"),
        "standard:512x512": usd("0.018"),
        "standard:1024x1024": usd("0.02"),
    },
}


class PriceFileError(ValueError):
    """The override file is unreadable or has a wrong value; the message says where."""


@dataclass(frozen=True, slots=True)
class ChatCost:
    micros: int
    tokens: int


class PriceTable:
    """Looks up prices by exact model name, then by the longest known prefix (dated snapshots)."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice] | None = None,
        images: Mapping[str, Mapping[str, int]] | None = None,
        *,
        fallback: ModelPrice,
        image_fallback: int,
    ) -> None:
        self._models = dict(DEFAULT_MODEL_PRICES if models is None else models)
        self._images = {
            name: dict(prices)
            for name, prices in (DEFAULT_IMAGE_PRICES if images is None else images).items()
        }
        self.fallback = fallback
        self.image_fallback = image_fallback
        self._warned: set[str] = set()

    @classmethod
    def load(cls, path: Path | None, *, fallback: ModelPrice, image_fallback: int) -> PriceTable:
        table = cls(fallback=fallback, image_fallback=image_fallback)
        if path is not None:
            table._apply_file(path)
        return table

    def _apply_file(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PriceFileError(f"price file {path}: {exc}") from exc
        for name, entry in data.get("models", {}).items():
            self._models[name] = ModelPrice(
                input=_price(path, f"models.{name}.input", entry, "input"),
                cached_input=_price(
                    path, f"models.{name}.cached_input", entry, "cached_input", entry.get("input")
                ),
                output=_price(path, f"models.{name}.output", entry, "output"),
            )
        for name, entry in data.get("images", {}).items():
            self._images[name] = {
                variant: _price(path, f"images.{name}.{variant}", entry, variant) for variant in entry
            }

    def model(self, model: str) -> ModelPrice:
        price = self._models.get(model)
        if price is None:
            prefixes = [name for name in self._models if model.startswith(name + "-")]
            if prefixes:
                price = self._models[max(prefixes, key=len)]
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                log.warning(
                    "no price for model %r: charging the fallback price %s (set THREADWISE_PRICES_FILE)",
                    model,
                    self.fallback,
                )
            return self.fallback
        return price

    def chat_cost(self, model: str, *, input_tokens: int, cached_tokens: int, output_tokens: int) -> ChatCost:
        """Exact cost of a call; cached tokens are part of ``input_tokens`` (as OpenAI reports them)."""
        price = self.model(model)
        cached = min(cached_tokens, input_tokens)
        numerator = (
            (input_tokens - cached) * price.input + cached * price.cached_input + output_tokens * price.output
        )
        return ChatCost(micros=-(-numerator // TOKENS_PER_PRICE_UNIT), tokens=input_tokens + output_tokens)

    def worst_case(self, model: str, *, prompt_tokens: int, max_output_tokens: int) -> ChatCost:
        """The most a call can cost: every prompt token uncached, the answer as long as allowed."""
        return self.chat_cost(
            model, input_tokens=prompt_tokens, cached_tokens=0, output_tokens=max_output_tokens
        )

    def image_cost(self, model: str, *, size: str, quality: str) -> int:
        prices = self._images.get(model, {})
        price = prices.get(f"{quality}:{size}")
        if price is None:
            key = f"image:{model}:{quality}:{size}"
            if key not in self._warned:
                self._warned.add(key)
                log.warning("no price for image %s %s %s: charging the fallback", model, quality, size)
            return self.image_fallback
        return price


def _price(path: Path, where: str, entry: Mapping[str, Any], field: str, default: Any = None) -> int:
    raw = entry.get(field, default)
    try:
        value = usd(str(raw))
    except (InvalidOperation, ValueError, TypeError):
        raise PriceFileError(
            f"price file {path}: {where} must be a USD amount like 0.15, got {raw!r}"
        ) from None
    if value < 0:
        raise PriceFileError(f"price file {path}: {where} must not be negative")
    return value
