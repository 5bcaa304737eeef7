"""The node tree of parsed expressions and its evaluation (no Python `eval`, only these nodes)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from configs._locs import short_repr
from configs.errors import CaActorsError

Root = Literal["state", "item", "index"]
BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
}
COMPARE_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
# Allowed methods and how many arguments each takes.
METHODS: dict[str, int] = {"startswith": 1, "endswith": 1, "lower": 0}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


class ExprEvalError(CaActorsError, ValueError):
    """Evaluating an expression failed: a missing path, operands of the wrong type, division by zero.

    Attributes:
        message: What went wrong.
        text: The expression (empty while the error travels up the tree).
        path: The path that does not exist, as written (`state.a.b`), if that is the problem.
    """

    def __init__(self, message: str, *, text: str = "", path: str | None = None) -> None:
        self.message = message
        self.text = text
        self.path = path
        super().__init__(f"{message} (in the expression {text!r})" if text else message)


@dataclass(frozen=True)
class PathRef:
    """A path an expression reads: its root, its segments after the root, its 1-based column."""

    root: Root
    path: tuple[str, ...]
    column: int


@dataclass(frozen=True)
class Context:
    """What an expression is evaluated on."""

    state: Mapping[str, Any]
    item: Any = None
    index: int | None = None


class Node(Protocol):
    """A node of the expression tree."""

    def evaluate(self, ctx: Context) -> Any:
        """Return the node's value on `ctx`."""
        ...


def describe(value: Any) -> str:
    """Return a value's JSON type name and a short repr, for messages (`str 'a'`, `int 3`)."""
    if value is None:
        return "null"
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "list", dict: "dict"}
    kind = names.get(type(value), "dict" if isinstance(value, Mapping) else type(value).__name__)
    return f"{kind} {short_repr(value, 40)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Const:
    """A literal."""

    value: Any

    def evaluate(self, ctx: Context) -> Any:
        return self.value


@dataclass(frozen=True)
class ListOf:
    """A list (or tuple) display; evaluates to a list."""

    items: tuple[Node, ...]

    def evaluate(self, ctx: Context) -> Any:
        return [item.evaluate(ctx) for item in self.items]


@dataclass(frozen=True)
class Path:
    """`state.a.b`, bare `a.b`, `item.x`, `index`; int segments index lists."""

    root: Root
    segments: tuple[str | int, ...]

    def evaluate(self, ctx: Context) -> Any:
        if self.root == "index":
            if ctx.index is None:
                raise ExprEvalError("index is only available in a map node", path="index")
            return ctx.index
        value: Any = ctx.state if self.root == "state" else ctx.item
        shown: str = self.root
        for segment in self.segments:
            value, shown = _step(value, segment, shown)
        return value


def _step(value: Any, segment: str | int, shown: str) -> tuple[Any, str]:
    child = f"{shown}.{segment}" if isinstance(segment, str) else f"{shown}[{segment}]"
    if isinstance(value, Mapping):
        if segment in value:
            return value[segment], child
        if isinstance(segment, int) and str(segment) in value:
            return value[str(segment)], child
        owner = "the state" if shown == "state" else shown
        keys = ", ".join(map(str, list(value)[:20])) or "none"
        raise ExprEvalError(f"{child} does not exist: {owner} has no key {segment!r} (its keys: {keys})", path=child)
    if isinstance(value, list | tuple) and isinstance(segment, int):
        if -len(value) <= segment < len(value):
            return value[segment], child
        raise ExprEvalError(f"{child} does not exist: {shown} has {len(value)} items", path=child)
    raise ExprEvalError(f"{child} does not exist: {shown} is {describe(value)}", path=child)


@dataclass(frozen=True)
class BoolOp:
    """`a and b and ...` / `a or b or ...`, short-circuit, returning an operand as Python does."""

    op: Literal["and", "or"]
    values: tuple[Node, ...]

    def evaluate(self, ctx: Context) -> Any:
        result: Any = None
        for node in self.values:
            result = node.evaluate(ctx)
            if (self.op == "and") != bool(result):
                return result
        return result


@dataclass(frozen=True)
class Unary:
    """`not x`, `-x`, `+x`."""

    op: Literal["not", "-", "+"]
    operand: Node

    def evaluate(self, ctx: Context) -> Any:
        value = self.operand.evaluate(ctx)
        if self.op == "not":
            return not value
        if not _is_number(value):
            raise ExprEvalError(f"unary {self.op} needs a number, got {describe(value)}")
        return -value if self.op == "-" else value


@dataclass(frozen=True)
class BinOp:
    """Arithmetic: numbers with any operator; `+` also joins two strings or two lists."""

    op: str
    left: Node
    right: Node

    def evaluate(self, ctx: Context) -> Any:
        left = self.left.evaluate(ctx)
        right = self.right.evaluate(ctx)
        numbers = _is_number(left) and _is_number(right)
        joinable = self.op == "+" and (
            (isinstance(left, str) and isinstance(right, str)) or (isinstance(left, list) and isinstance(right, list))
        )
        if not (numbers or joinable):
            allowed = "two numbers, two strings or two lists" if self.op == "+" else "two numbers"
            raise ExprEvalError(f"cannot apply {self.op} to {describe(left)} and {describe(right)}; it needs {allowed}")
        try:
            return _ARITHMETIC[self.op](left, right)
        except ZeroDivisionError:
            raise ExprEvalError(f"division by zero in {describe(left)} {self.op} {describe(right)}") from None
        except OverflowError:
            raise ExprEvalError(f"{describe(left)} {self.op} {describe(right)} is too large") from None


@dataclass(frozen=True)
class Compare:
    """`a < b`, chained `a < b <= c`, `x in xs`, `x not in xs`."""

    left: Node
    ops: tuple[str, ...]
    rights: tuple[Node, ...]

    def evaluate(self, ctx: Context) -> Any:
        left = self.left.evaluate(ctx)
        for op, node in zip(self.ops, self.rights, strict=True):
            right = node.evaluate(ctx)
            if op in ("in", "not in") and not isinstance(right, str | list | tuple | Mapping):
                raise ExprEvalError(f"{op!r} needs a string, list or dict on its right, got {describe(right)}")
            try:
                result = bool(_COMPARE[op](left, right))
            except TypeError:
                raise ExprEvalError(f"cannot compare {describe(left)} with {describe(right)} using {op!r}") from None
            if not result:
                return False
            left = right
        return True


@dataclass(frozen=True)
class Len:
    """`len(x)` of a string, list or dict."""

    arg: Node

    def evaluate(self, ctx: Context) -> Any:
        value = self.arg.evaluate(ctx)
        if not isinstance(value, str | list | tuple | Mapping):
            raise ExprEvalError(f"len() needs a string, list or dict, got {describe(value)}")
        return len(value)


@dataclass(frozen=True)
class Method:
    """`s.startswith(x)`, `s.endswith(x)`, `s.lower()` on strings."""

    obj: Node
    name: str
    args: tuple[Node, ...]

    def evaluate(self, ctx: Context) -> Any:
        value = self.obj.evaluate(ctx)
        args: Sequence[Any] = [arg.evaluate(ctx) for arg in self.args]
        if not isinstance(value, str):
            raise ExprEvalError(f".{self.name}() needs a string, got {describe(value)}")
        if self.name == "lower":
            return value.lower()
        if not isinstance(args[0], str):
            raise ExprEvalError(f".{self.name}() needs a string argument, got {describe(args[0])}")
        return value.startswith(args[0]) if self.name == "startswith" else value.endswith(args[0])
