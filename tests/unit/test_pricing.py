"""Exact micro-dollar arithmetic, price lookup, the override file and the unknown-model fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.money.pricing import ModelPrice, PriceFileError, PriceTable, format_usd, usd

FALLBACK = ModelPrice(usd("10"), usd("10"), usd("40"))


def table(path: Path | None = None) -> PriceTable:
    return PriceTable.load(path, fallback=FALLBACK, image_fallback=usd("0.25"))


def test_usd_to_micros_is_exact_and_rounds_up() -> None:
    assert usd("0.15") == 150_000
    assert usd("2.50") == 2_500_000
    assert usd("0.0000001") == 1  # a tenth of a micro-dollar still costs one


def test_chat_cost_with_cached_tokens_is_exact() -> None:
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per 1M tokens.
    # 600 uncached x 0.15 + 400 cached x 0.075 + 500 output x 0.60 = 90 + 30 + 300 = 420 micro-dollars.
    cost = table().chat_cost("gpt-4o-mini", input_tokens=1_000, cached_tokens=400, output_tokens=500)
    assert cost.micros == 420 and cost.tokens == 1_500


def test_fractions_of_a_micro_dollar_round_up_never_down() -> None:
    # 1 input token of gpt-4o-mini is 0.15 micro-dollars: billed as 1.
    assert table().chat_cost("gpt-4o-mini", input_tokens=1, cached_tokens=0, output_tokens=0).micros == 1
    # 7 output tokens of gpt-4o: 7 x 10 = 70 micro-dollars exactly.
    assert table().chat_cost("gpt-4o", input_tokens=0, cached_tokens=0, output_tokens=7).micros == 70


def test_dated_snapshots_use_their_family_price() -> None:
    prices = table()
    assert prices.model("gpt-4o-mini-2024-07-18") == prices.model("gpt-4o-mini")
    assert prices.model("gpt-4o-2024-11-20") == prices.model("gpt-4o")
    assert prices.model("gpt-4o-mini") != prices.model("gpt-4o")


def test_unknown_model_is_charged_the_fallback_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    prices = table()
    with caplog.at_level(logging.WARNING, logger="core.money.pricing"):
        first = prices.chat_cost("my-llama", input_tokens=1_000, cached_tokens=0, output_tokens=1_000)
        prices.chat_cost("my-llama", input_tokens=10, cached_tokens=0, output_tokens=10)
    assert first.micros == 10_000 + 40_000
    assert len(caplog.records) == 1 and "my-llama" in caplog.records[0].getMessage()


def test_override_file_adds_and_changes_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."llama3.1"]\ninput = 0\noutput = 0\n\n'
        '[models."gpt-4o-mini"]\ninput = 0.20\ncached_input = 0.10\noutput = 0.80\n\n'
        '[images."my-image"]\n"standard:1024x1024" = 0.01\n'
    )
    prices = table(path)
    assert prices.chat_cost("llama3.1", input_tokens=10**6, cached_tokens=0, output_tokens=10**6).micros == 0
    assert (
        prices.chat_cost("gpt-4o-mini", input_tokens=10**6, cached_tokens=0, output_tokens=0).micros
        == 200_000
    )
    assert prices.image_cost("my-image", size="1024x1024", quality="standard") == 10_000
    assert prices.image_cost("gpt-image-1", size="1024x1024", quality="high") == 167_000


def test_bad_override_file_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models.cheap]\ninput = "free"\noutput = 0\n')
    with pytest.raises(PriceFileError, match=r"models\.cheap\.input"):
        table(path)


def test_image_prices() -> None:
    prices = table()
    assert prices.image_cost("dall-e-3", size="1024x1792", quality="hd") == 120_000
    assert prices.image_cost("gpt-image-1", size="1536x1024", quality="low") == 16_000
    assert prices.image_cost("gpt-image-1", size="999x999", quality="low") == 250_000  # fallback


def test_format_usd() -> None:
    assert format_usd(2_500_000) == "$2.50"
    assert format_usd(12_345) == "$0.012345"
    assert format_usd(1_234_567_000) == "$1,234.567"
    assert format_usd(420) == "$0.00042"
    assert format_usd(0) == "$0.00"
