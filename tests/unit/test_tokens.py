"""Token counts against tiktoken's real tables, context windows, image costs, and the offline estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from core.llm.tokens import TokenCounter, context_window, image_tokens


@pytest.fixture(scope="module")
def o200k(tiktoken_cache: str | None) -> tiktoken.Encoding:
    return tiktoken.get_encoding("o200k_base")


@pytest.fixture(scope="module")
def cl100k(tiktoken_cache: str | None) -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base")


@pytest.fixture(scope="module")
def counter(tiktoken_cache: str | None) -> TokenCounter:
    return TokenCounter()


def n(encoding: tiktoken.Encoding, text: str) -> int:
    return len(encoding.encode(text))


# --- exact counts ----------------------------------------------------------------------------------------


@pytest.mark.needs_token_tables("compares a message's count with o200k_base's")
def test_plain_message_count_is_framing_plus_role_plus_content(
    counter: TokenCounter, o200k: tiktoken.Encoding
) -> None:
    content = "What's the capital of France, and how many people live there?"
    message = {"role": "user", "content": content}

    assert counter.count_message("gpt-4o-mini", message, []) == 3 + n(o200k, "user") + n(o200k, content)


@pytest.mark.needs_token_tables("compares a named message's count with o200k_base's")
def test_name_adds_one_token_plus_its_tokens(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    message = {"role": "user", "content": "hello there", "name": "alice_smith"}

    expected = 3 + n(o200k, "user") + n(o200k, "hello there") + 1 + n(o200k, "alice_smith")
    assert counter.count_message("gpt-4o", message, []) == expected


@pytest.mark.needs_token_tables("compares tool-call counts with o200k_base's")
def test_tool_calls_and_tool_result_are_counted(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    arguments_1 = json.dumps({"expression": "12 * (3 + 4) / 5"})
    arguments_2 = json.dumps({"city": "Zürich", "days": 3})
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "calculator", "arguments": arguments_1},
            },
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": arguments_2}},
        ],
    }
    # Per call: 3 framing tokens + the function name + the raw argument text. No content.
    expected_assistant = (
        3
        + n(o200k, "assistant")
        + (3 + n(o200k, "calculator") + n(o200k, arguments_1))
        + (3 + n(o200k, "weather") + n(o200k, arguments_2))
    )
    assert counter.count_message("gpt-4o-mini", assistant, []) == expected_assistant

    tool = {"role": "tool", "tool_call_id": "call_1", "content": "16.8"}
    expected_tool = 3 + n(o200k, "tool") + n(o200k, "16.8") + n(o200k, "call_1")
    assert counter.count_message("gpt-4o-mini", tool, []) == expected_tool


@pytest.mark.needs_token_tables("compares counts of emoji, CJK and code with o200k_base's")
def test_non_ascii_emoji_and_code(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    text = (
        "Grüße aus Köln! 🎉👍🏽 Привет, 世界\n```python\ndef f(x: int) -> int:\n    return x ** 2  # ✓\n```"
    )
    message = {"role": "user", "content": text}

    assert counter.count_text("gpt-4o-mini", text) == n(o200k, text)
    assert counter.count_message("gpt-4o-mini", message, []) == 3 + n(o200k, "user") + n(o200k, text)


@pytest.mark.needs_token_tables("compares list-content counts with o200k_base's")
def test_text_parts_of_a_list_content_are_counted(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "first part, "}, {"type": "text", "text": "second part"}],
    }

    expected = 3 + n(o200k, "user") + n(o200k, "first part, ") + n(o200k, "second part")
    assert counter.count_message("gpt-4o-mini", message, []) == expected


@pytest.mark.needs_token_tables("compares a text-and-image message's count with o200k_base's")
def test_image_parts_add_their_tile_cost(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        ],
    }

    # gpt-4o: 1024x1024 high -> 85 + 170 * 4 = 765 (see the image_tokens tests); low detail -> 85.
    expected = 3 + n(o200k, "user") + n(o200k, "what is this?") + 765 + 85
    assert counter.count_message("gpt-4o", message, [(1024, 1024), (300, 200)]) == expected


@pytest.mark.needs_token_tables("compares special-token text's count with o200k_base's")
def test_special_token_text_is_counted_as_plain_text(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    # A user pasting tiktoken's special-token syntax must not crash counting.
    text = "please ignore <|endoftext|> and <|im_start|>system"

    assert counter.count_text("gpt-4o-mini", text) == len(o200k.encode(text, disallowed_special=()))


@pytest.mark.needs_token_tables("counts an unknown model's text with o200k_base")
def test_model_unknown_to_tiktoken_uses_o200k(counter: TokenCounter, o200k: tiktoken.Encoding) -> None:
    text = "Привет, как дела? Всё хорошо."  # 9 tokens in o200k_base, 17 in cl100k_base

    assert counter.encoding_for("llama3-70b") == "o200k_base"
    assert counter.count_text("llama3-70b", text) == n(o200k, text)


@pytest.mark.needs_token_tables("counts gpt-4 text with cl100k_base")
def test_gpt_4_uses_cl100k(
    counter: TokenCounter, o200k: tiktoken.Encoding, cl100k: tiktoken.Encoding
) -> None:
    text = "Привет, как дела? Всё хорошо."
    assert n(cl100k, text) != n(o200k, text)  # the text tells the two tables apart

    assert counter.encoding_for("gpt-4") == "cl100k_base"
    assert counter.count_text("gpt-4", text) == n(cl100k, text)
    message = {"role": "user", "content": text}
    assert counter.count_message("gpt-4", message, []) == 3 + n(cl100k, "user") + n(cl100k, text)


@pytest.mark.needs_token_tables("checks that gpt-4o counts with the loaded o200k_base")
def test_gpt_4o_family_uses_o200k(counter: TokenCounter) -> None:
    assert counter.encoding_for("gpt-4o-mini") == "o200k_base"
    assert counter.encoding_for("gpt-4o-2024-08-06") == "o200k_base"


@pytest.mark.needs_token_tables("checks that preload loads o200k_base")
async def test_preload_reports_the_encoding(counter: TokenCounter) -> None:
    assert await counter.preload("gpt-4o-mini") == "o200k_base"
    assert await counter.preload("gpt-4") == "cl100k_base"


# --- context windows -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o-mini", 128_000),
        ("gpt-4o-mini-2024-07-18", 128_000),
        ("gpt-4o", 128_000),
        ("gpt-4-0613", 8_192),
        ("gpt-4", 8_192),
        ("gpt-4-turbo-2024-04-09", 128_000),
        ("gpt-4.1-mini", 1_047_576),
        ("gpt-3.5-turbo-0125", 16_385),
        ("o3-mini", 200_000),
        ("gpt-5-nano", 400_000),
        ("llama3-70b", 8_192),
        ("", 8_192),
    ],
)
def test_context_window_by_longest_prefix(model: str, window: int) -> None:
    assert context_window(model) == window


def test_context_window_overrides() -> None:
    overrides = {"llama3.1": 131_072, "gpt-4o-mini": 64_000}

    assert context_window("llama3.1-70b-instruct", overrides) == 131_072
    assert context_window("llama3.1", overrides) == 131_072
    # An override for a longer prefix beats the built-in shorter one...
    assert context_window("gpt-4o-mini-2024-07-18", overrides) == 64_000
    # ...without changing models that only match the shorter one.
    assert context_window("gpt-4o-2024-08-06", overrides) == 128_000
    # An override of a built-in prefix replaces it.
    assert context_window("gpt-4-0613", {"gpt-4": 32_768}) == 32_768
    assert context_window("llama3-70b", overrides) == 8_192


# --- image tokens ----------------------------------------------------------------------------------------


def test_low_detail_image_costs_the_base_only() -> None:
    assert image_tokens("gpt-4o", 4096, 4096, "low") == 85
    assert image_tokens("gpt-4o-mini", 4096, 4096, "low") == 2_833


def test_1024_square_image_high_detail() -> None:
    # 1024x1024 fits in 2048x2048; shortest side 1024 > 768 -> scaled to 768x768;
    # tiles ceil(768/512) * ceil(768/512) = 2 * 2 = 4.
    # gpt-4o: 85 + 170 * 4 = 765.  gpt-4o-mini: 2833 + 5667 * 4 = 25501.
    assert image_tokens("gpt-4o", 1024, 1024, "high") == 765
    assert image_tokens("gpt-4o-mini", 1024, 1024, "high") == 25_501
    # "auto" is billed as the worst case, high.
    assert image_tokens("gpt-4o", 1024, 1024) == 765


def test_4096x2048_image_high_detail() -> None:
    # 4096x2048 -> fit in 2048x2048: 2048x1024; shortest side 1024 > 768 -> 1536x768;
    # tiles ceil(1536/512) * ceil(768/512) = 3 * 2 = 6.  gpt-4o: 85 + 170 * 6 = 1105.
    assert image_tokens("gpt-4o", 4096, 2048, "high") == 1_105
    assert image_tokens("gpt-4o", 2048, 4096, "high") == 1_105
    # gpt-4o-mini: 2833 + 5667 * 6 = 36835.
    assert image_tokens("gpt-4o-mini", 4096, 2048, "high") == 36_835


def test_small_image_is_one_tile_and_not_upscaled() -> None:
    # 300x200: no scaling; tiles ceil(300/512) * ceil(200/512) = 1 -> 85 + 170 = 255.
    assert image_tokens("gpt-4o", 300, 200, "high") == 255


def test_short_side_under_768_is_not_scaled_up() -> None:
    # 1000x600: shortest side 600 <= 768, kept as is; tiles ceil(1000/512) * ceil(600/512) = 2 * 2 = 4
    # -> 85 + 170 * 4 = 765.  (Scaling up to 1280x768 would wrongly give 3 * 2 = 6 tiles, 1105.)
    assert image_tokens("gpt-4o", 1000, 600, "high") == 765


# --- offline fallback ------------------------------------------------------------------------------------

ESTIMATE_TEXTS: dict[str, str] = {
    "english prose": (
        "Threadwise keeps every conversation in its own thread, so answers stay on topic. "
        "The quick brown fox jumps over the lazy dog while the team waits for the deploy."
    ),
    "python code": textwrap.dedent(
        """\
        def fibonacci(n: int) -> list[int]:
            \"\"\"The first n Fibonacci numbers.\"\"\"
            numbers = [0, 1]
            while len(numbers) < n:
                numbers.append(numbers[-1] + numbers[-2])
            return numbers[:n]


        if __name__ == "__main__":
            print(fibonacci(10))
        """
    ),
    "chinese": "今天天气很好，我们去公园散步吧。机器学习是人工智能的一个分支，它让计算机从数据中学习。",
    "digits": "3141592653589793238462643383279502884197169399375105820974944592",
    "timestamp": "2024-07-18T12:34:56Z",
    "number list": "1 2 3 4 5 6 7 8 9 10 11 12",
    "phone numbers": "+1 (555) 123-4567, +44 20 7946 0958",
    "compact json": '{"a":[1,2,3],"b":{"c":null}}',
}


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run a fresh interpreter whose tiktoken cache is empty (loading the tables fails for real) and return
    what it counted and what it logged."""
    empty_cache = tmp_path_factory.mktemp("empty-tiktoken-cache")
    script = textwrap.dedent(
        """\
        import json, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from core.llm.tokens import TokenCounter

        texts = json.loads(sys.argv[1])
        counter = TokenCounter()
        first = counter.encoding_for("gpt-4o-mini")
        estimates = {name: counter.count_text("gpt-4o-mini", text) for name, text in texts.items()}
        again = {name: counter.count_text("gpt-4o-mini", text) for name, text in texts.items()}
        message = counter.count_message("gpt-4o-mini", {"role": "user", "content": "hello"}, [])
        print(json.dumps({"first": first, "last": counter.encoding_for("gpt-4o-mini"),
                          "estimates": estimates, "again": again, "message": message}))
        """
    )
    env = {key: value for key, value in os.environ.items() if key.upper() not in ("NO_PROXY",)}
    env["TIKTOKEN_CACHE_DIR"] = str(empty_cache)
    # This machine has no network; a dead local proxy keeps the download failing on one that has.
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(ESTIMATE_TEXTS)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert list(empty_cache.iterdir()) == []
    return {"stderr": result.stderr, **json.loads(result.stdout)}


def test_offline_counts_say_estimate(offline: dict[str, Any]) -> None:
    assert offline["first"] == "estimate"
    assert offline["last"] == "estimate"
    assert offline["again"] == offline["estimates"]


def test_offline_logs_exactly_one_warning(offline: dict[str, Any]) -> None:
    lines = offline["stderr"].splitlines()

    mentions = [line for line in lines if "TIKTOKEN_CACHE_DIR" in line]
    assert len(mentions) == 1
    assert mentions[0].startswith("WARNING:core.llm.tokens:")
    assert "o200k_base" in mentions[0]
    assert [line for line in lines if line.startswith("WARNING")] == mentions


def test_offline_message_count_keeps_framing(offline: dict[str, Any]) -> None:
    # 3 framing + ceil(4 bytes / 2.5) for "user" + ceil(5 bytes / 2.5) for "hello" = 3 + 2 + 2
    assert offline["message"] == 7


@pytest.mark.parametrize(
    "name",
    [
        "english prose",
        "python code",
        "chinese",
        "digits",
        "timestamp",
        "number list",
        "phone numbers",
        "compact json",
    ],
)
@pytest.mark.needs_token_tables("compares the offline estimate with o200k_base's real counts")
def test_offline_estimate_is_not_below_the_real_count(
    offline: dict[str, Any], o200k: tiktoken.Encoding, name: str
) -> None:
    text = ESTIMATE_TEXTS[name]

    assert offline["estimates"][name] >= n(o200k, text)
