"""The calculator's bounds: every operation's cost is checked before it runs, so a hostile expression is
refused in milliseconds with a message the model can act on, and ordinary arithmetic is unchanged."""

from __future__ import annotations

import time

import pytest

from core.tools.calculator import evaluate, format_number
from core.tools.registry import ToolError

ORDINARY = [
    ("2**10", 1024),
    ("sqrt(2) * (3 + 4) / 7", 2**0.5),
    ("round(3.14159, 2)", 3.14),
    ("round(1234567, -3)", 1235000),
    ("round(2.5)", 2),
    ("factorial(20)", 2432902008176640000),
    ("gcd(12, 18) + max(1, 2, 3) - min(4, 5)", 5),
    ("2**9999 // 2**9998", 2),
    ("7 // 2 + 7 % 2 - 2 ^ 3", 3 + 1 - 8),
    ("-(-3) + +4", 7),
    ("log(1000, 10)", 2.9999999999999996),
]

HOSTILE = [
    ("round(7, -10**7)", "round"),
    ("round(7, -10**5)", "round"),
    ("round(2**9999, -10**4)", "round"),
    ("10**10**10", "too large"),
    ("9**9**9", "too large"),
    ("2**9999 * 2**9999", "too large"),
    ("(2**5000)**3", "too large"),
    ("factorial(10**5)", "factorial"),
    ("factorial(factorial(10))", "factorial"),
    ("1e308 * 10", "too large"),
    ("9" * 4000, "longer than"),
    ("-" * 300 + "1", "too complex"),
    ("(" * 60 + "1" + ")" * 60, None),  # parentheses make no nodes: harmless, answered
    ("abs(" * 60 + "1" + ")" * 60, "nested"),
    ("1 << 10**9", "not allowed"),
    ("2 >> 1", "not allowed"),
    ("(-8) ** 0.5", "real number"),
    ("'a' * 10**9", "not allowed"),
]


@pytest.mark.parametrize(("expression", "expected"), ORDINARY)
def test_ordinary_arithmetic_is_unchanged(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected)


def test_big_but_bounded_results_are_exact() -> None:
    assert evaluate("2**9999") == 2**9999
    assert format_number(evaluate("factorial(1000)")).startswith("402387260077")
    assert evaluate("round(7, -1000)") == 0
    assert evaluate("round(1.5, 1000)") == 1.5


@pytest.mark.parametrize(("expression", "message"), HOSTILE)
def test_hostile_expressions_are_refused_quickly(expression: str, message: str | None) -> None:
    started = time.thread_time()
    if message is None:
        assert evaluate(expression) == 1
    else:
        with pytest.raises(ToolError, match=message):
            evaluate(expression)
    # Each takes microseconds of CPU when bounded and seconds to minutes when not (CPU time of this thread, so
    # other load on the machine does not count).
    assert time.thread_time() - started < 0.5


def test_refusals_say_what_the_bound_is() -> None:
    with pytest.raises(ToolError) as refused:
        evaluate("round(7, -10**7)")
    assert "1000" in str(refused.value)
    with pytest.raises(ToolError) as refused:
        evaluate("factorial(5000)")
    assert "1000" in str(refused.value)
