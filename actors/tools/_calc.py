"""The ``calculator`` tool: arithmetic evaluated over a whitelist of ``ast`` nodes, never ``eval``.

Allowed: int and float literals, ``+ - * / // % **``, unary ``+``/``-``, parentheses and the functions
abs, round, min, max, sqrt. Exponents and integer sizes are bounded so one expression cannot eat the CPU
or the memory of the worker.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from ._base import FunctionTool, ToolContext, ToolError, object_schema

MAX_EXPRESSION_CHARS = 1_000
MAX_EXPONENT = 10_000
MAX_INT_BITS = 10_000  # ~3,000 decimal digits: still printable (Python refuses int->str past 4,300 digits)

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_ROUND_DIGITS = 100


def _round(value: Number, ndigits: Number | None = None) -> Number:
    """``round`` with a bounded ``ndigits`` (``round(5, -10**7)`` computes ``10**10**7`` first)."""
    if ndigits is None:
        return round(value)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ToolError(f"round() digits must be an integer between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}")
    return round(value, ndigits)


_FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "round": _round, "min": min, "max": max, "sqrt": math.sqrt}
_ALLOWED = "numbers, + - * / // % **, parentheses and abs/round/min/max/sqrt"


def _checked(value: Any) -> Number:
    """Refuse results that are not finite numbers or are too large to print."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"result {value!r} is not a number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError(f"result has more than {MAX_INT_BITS} bits; use smaller numbers")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result is not finite (overflow); use smaller numbers")
    number: Number = value
    return number


def _power(base: Number, exponent: Number) -> Number:
    """``base ** exponent`` with the size of the result estimated before computing it."""
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponent {exponent} is too large (at most {MAX_EXPONENT})")
    big = isinstance(base, int) and isinstance(exponent, int) and base.bit_length() * exponent > MAX_INT_BITS * 2
    if big:
        raise ToolError(f"{base} ** {exponent} is too large; use smaller numbers")
    result = base**exponent
    if isinstance(result, complex):
        raise ToolError(f"{base} ** {exponent} is not a real number")
    return result


def _eval(node: ast.AST) -> Number:
    """Evaluate one whitelisted node; anything else is refused with its name."""
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"only numbers are allowed, got {node.value!r}")
        return _checked(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ToolError(f"unknown function {name!r}; allowed: {', '.join(_FUNCTIONS)}")
        if node.keywords:
            raise ToolError(f"{node.func.id}() takes no keyword arguments")
        values = [_eval(arg) for arg in node.args]
        return _checked(_FUNCTIONS[node.func.id](*values))
    if isinstance(node, ast.Name):
        raise ToolError(f"names are not allowed: {node.id!r} (only {_ALLOWED})")
    if isinstance(node, ast.Attribute):
        raise ToolError(f"attributes are not allowed: {ast.unparse(node)!r} (only {_ALLOWED})")
    raise ToolError(f"{type(node).__name__} is not allowed (only {_ALLOWED})")


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression safely.

    Args:
        expression: e.g. ``"(2 + 3) * sqrt(16) / 2"``.

    Returns:
        The value (int or float).

    Raises:
        ToolError: syntax errors, anything outside the whitelist, division by zero, overflow, huge results.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"invalid expression: {exc.msg} (column {exc.offset})") from exc
    except (RecursionError, MemoryError) as exc:
        raise ToolError("expression is nested too deeply") from exc
    try:
        return _eval(tree)
    except ZeroDivisionError as exc:
        raise ToolError("division by zero") from exc
    except OverflowError as exc:
        raise ToolError("result is too large (overflow); use smaller numbers") from exc
    except RecursionError as exc:
        raise ToolError("expression is nested too deeply") from exc
    except (TypeError, ValueError) as exc:
        raise ToolError(f"cannot compute {expression!r}: {exc}") from exc


async def _calculator(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Evaluate the expression argument."""
    expression = str(args["expression"])
    return {"expression": expression, "result": evaluate(expression)}


CALCULATOR = FunctionTool(
    name="calculator",
    description=f"Evaluate an arithmetic expression. Supports {_ALLOWED}. Example: '(2 + 3) * sqrt(16) / 2'.",
    parameters=object_schema(
        {"expression": {"type": "string", "description": "The arithmetic expression."}}, required=["expression"]
    ),
    fn=_calculator,
    timeout_s=5.0,
)
