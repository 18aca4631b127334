"""Safe arithmetic for the ``calculator`` tool: the expression's AST is walked, never ``eval``-ed.

The cost of every operation is bounded *before* it runs (operand sizes, exponents, ``round`` digits,
factorial arguments, result size, nesting depth, node count, expression length), so no single step holds the
interpreter for more than about a millisecond. The walk then runs in a worker thread with a deadline checked
at every node: the event loop stays free, and since no step is long, the deadline is a hard bound. A thread
rather than a process: with these bounds the whole evaluation costs microseconds to milliseconds, so a process
(its start-up, its memory, reaping it when killed) would buy nothing but cost on every call.
"""

from __future__ import annotations

import ast
import asyncio
import math
import operator
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from core.tools.registry import Tool, ToolContext, ToolError, ToolOutput

MAX_EXPRESSION_CHARS = 500
MAX_NODES = 200
MAX_RESULT_BITS = 10_000  # about 3,000 decimal digits
MAX_EXPONENT = 10_000
MAX_ROUND_DIGITS = 1000  # round(x, -n) of an int computes 10**n
MAX_FACTORIAL = 1000
MAX_DEPTH = 40
DEADLINE_SECONDS = 1.0  # the whole walk, checked at every node; the bounds above keep it to milliseconds

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
    "gcd": math.gcd,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}


class CalculatorArgs(BaseModel):
    expression: str = Field(
        description="An arithmetic expression in Python syntax, e.g. 2**10 or sqrt(2) * (3 + 4) / 7. "
        "Supports + - * / // % **, parentheses, pi, e and functions like sqrt, log, sin, round, factorial."
    )


def evaluate(expression: str, *, deadline_seconds: float = DEADLINE_SECONDS) -> int | float:
    """The value of ``expression``; ToolError for anything that is not bounded arithmetic."""
    tree = _parse(expression)
    walk = _Walk(time.monotonic() + deadline_seconds)
    try:
        value = walk.eval(tree.body, 0)
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except OverflowError:
        raise ToolError(f"The result is too large (at most {MAX_RESULT_BITS:,} bits).") from None
    except (ValueError, TypeError) as exc:
        raise ToolError(f"Math error: {exc}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("The expression does not give a number.")
    return value


def _parse(expression: str) -> ast.Expression:
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise ToolError("The expression is empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"That is not an arithmetic expression: {exc.msg}.") from None
    except (RecursionError, MemoryError):
        raise ToolError("The expression is nested too deeply.") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError(f"The expression is too complex (at most {MAX_NODES} parts).")
    return tree


class _Walk:
    """One evaluation: the AST walked with every operation's cost checked before it runs."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def eval(self, node: ast.expr, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ToolError(f"The expression is nested too deeply (at most {MAX_DEPTH} levels).")
        if time.monotonic() > self._deadline:
            raise ToolError("The expression took too long to evaluate.")
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return _bounded(node.value)
        if isinstance(node, ast.Name) and node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _bounded(_UNARY[type(node.op)](self.eval(node.operand, depth + 1)))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.eval(node.left, depth + 1), self.eval(node.right, depth + 1)
            _check_binary(node.op, left, right)
            return _bounded(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
            if node.keywords:
                raise ToolError("Functions take positional arguments only.")
            args = [self.eval(arg, depth + 1) for arg in node.args]
            _check_call(node.func.id, args)
            return _bounded(_FUNCTIONS[node.func.id](*args))
        if isinstance(node, ast.Name):
            raise ToolError(f"Unknown name {node.id!r}; known constants: {', '.join(_CONSTANTS)}.")
        if isinstance(node, ast.Call):
            raise ToolError(f"Unknown function; known: {', '.join(sorted(_FUNCTIONS))}.")
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            raise ToolError(
                f"The operator {type(node.op).__name__} is not allowed in an arithmetic expression."
            )
        raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression.")


def _check_binary(op: ast.operator, left: Any, right: Any) -> None:
    if isinstance(op, ast.Pow):
        _check_power(left, right)
    both_int = isinstance(left, int) and isinstance(right, int)
    if isinstance(op, ast.Mult) and both_int and left.bit_length() + right.bit_length() > MAX_RESULT_BITS + 1:
        raise OverflowError


def _check_call(name: str, args: list[Any]) -> None:
    if name == "factorial" and args and isinstance(args[0], int) and args[0] > MAX_FACTORIAL:
        raise ToolError(f"factorial() takes at most {MAX_FACTORIAL}.")
    if name == "round" and len(args) == 2 and isinstance(args[1], int) and abs(args[1]) > MAX_ROUND_DIGITS:
        raise ToolError(f"round() takes at most {MAX_ROUND_DIGITS} digits either side of the point.")


def _check_power(base: Any, exponent: Any) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise OverflowError
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and (base.bit_length() - 1) * exponent > MAX_RESULT_BITS:
        raise OverflowError


def _bounded(value: Any) -> Any:
    if isinstance(value, complex):
        raise ToolError("The result is not a real number.")
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise OverflowError
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError
    return value


def format_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(float(f"{value:.15g}"))


async def _calculate(args: CalculatorArgs, context: ToolContext) -> ToolOutput:
    # Off the event loop; the bounds and the deadline in ``evaluate`` make sure the thread ends soon.
    value = await asyncio.to_thread(evaluate, args.expression)
    return ToolOutput(f"{args.expression.strip()} = {format_number(value)}")


def calculator_tool() -> Tool:
    return Tool(
        name="calculator",
        description="Evaluate an arithmetic expression exactly. Use it for any calculation.",
        arguments=CalculatorArgs,
        run=_calculate,
        timeout=2.0,
    )
