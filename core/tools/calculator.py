"""Safe arithmetic for the ``calculator`` tool: the expression's AST is walked, never ``eval``-ed."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from core.tools.registry import Tool, ToolContext, ToolError, ToolOutput

MAX_EXPRESSION_CHARS = 500
MAX_NODES = 200
MAX_RESULT_BITS = 10_000  # about 3,000 decimal digits
MAX_EXPONENT = 10_000

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


def evaluate(expression: str) -> int | float:
    """The value of ``expression``; ToolError for anything that is not bounded arithmetic."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise ToolError("The expression is empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"That is not an arithmetic expression: {exc.msg}.") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ToolError("The expression is too complex.")
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    except OverflowError:
        raise ToolError("The result is too large.") from None
    except (ValueError, TypeError) as exc:
        raise ToolError(f"Math error: {exc}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("The expression does not give a number.")
    return value


def _eval(node: ast.expr) -> Any:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        big_product = (
            isinstance(left, int)
            and isinstance(right, int)
            and (left.bit_length() + right.bit_length() > MAX_RESULT_BITS + 1)
        )
        if isinstance(node.op, ast.Mult) and big_product:
            raise OverflowError
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise ToolError("Functions take positional arguments only.")
        args = [_eval(arg) for arg in node.args]
        if node.func.id == "factorial" and args and isinstance(args[0], int) and args[0] > 1000:
            raise OverflowError
        return _bounded(_FUNCTIONS[node.func.id](*args))
    if isinstance(node, ast.Name):
        raise ToolError(f"Unknown name {node.id!r}; known constants: {', '.join(_CONSTANTS)}.")
    if isinstance(node, ast.Call):
        raise ToolError(f"Unknown function; known: {', '.join(sorted(_FUNCTIONS))}.")
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression.")


def _check_power(base: Any, exponent: Any) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise OverflowError
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and (base.bit_length() - 1) * exponent > MAX_RESULT_BITS:
        raise OverflowError


def _bounded(value: Any) -> Any:
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
    value = evaluate(args.expression)
    return ToolOutput(f"{args.expression.strip()} = {format_number(value)}")


def calculator_tool() -> Tool:
    return Tool(
        name="calculator",
        description="Evaluate an arithmetic expression exactly. Use it for any calculation.",
        arguments=CalculatorArgs,
        run=_calculate,
        timeout=2.0,
    )
