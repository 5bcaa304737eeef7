"""The safe expression language of route conditions: parsed with `ast`, whitelisted, evaluated by a tree walk.

Nothing is ever compiled or `eval`-ed: `parse_expr` turns the Python AST into the small node tree of
`_exprtree`, refusing every construct not listed in `ALLOWED`; `Expr.evaluate` walks that tree.

    CaActorsError
    ├── ExprError (also ValueError)       the text is not a valid expression (carries `.column`)
    └── ExprEvalError (also ValueError)   evaluation failed: a missing path, a type error, ...
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from configs._exprtree import (
    BINARY_OPS,
    COMPARE_OPS,
    METHODS,
    BinOp,
    BoolOp,
    Compare,
    Const,
    Context,
    ExprEvalError,
    Len,
    ListOf,
    Method,
    Node,
    Path,
    PathRef,
    Root,
    Unary,
)
from configs.errors import CaActorsError

__all__ = ["ALLOWED", "Expr", "ExprError", "ExprEvalError", "PathRef", "parse_expr"]

ALLOWED = (
    "and/or/not, comparisons (== != < <= > >= in, not in), + - * / // %, literals (numbers, strings, "
    "true/false/null, lists), state.a.b or a.b, item, index, len(x), .startswith(s), .endswith(s), .lower()"
)
MAX_LENGTH = 2000
_CONSTANTS: dict[str, Any] = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}
_REFUSED: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Dict: "a dict literal",
    ast.Set: "a set literal",
    ast.IfExp: "a conditional expression (a if c else b)",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "an assignment (:=)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Starred: "a starred expression",
    ast.Slice: "a slice",
}
_HINTS = (
    (re.compile(r"&&"), "use `and` instead of `&&`"),
    (re.compile(r"\|\|"), "use `or` instead of `||`"),
    (re.compile(r"!(?!=)"), "use `not x` instead of `!x`"),
    (re.compile(r"(?<![=!<>])=(?!=)"), "use `==` to compare"),
)


class ExprError(CaActorsError, ValueError):
    """An expression cannot be parsed or uses a construct that is not allowed.

    Attributes:
        message: What is wrong and what would be valid.
        column: 1-based column of the problem inside the expression text.
        text: The expression.
    """

    def __init__(self, message: str, *, column: int, text: str = "") -> None:
        self.message = message
        self.column = column
        self.text = text
        super().__init__(message)


@dataclass(frozen=True)
class Expr:
    """A parsed, whitelisted expression.

    Attributes:
        text: The expression as written.
        state_paths: State paths it reads, without the leading `state` (`a.b` -> ("a", "b")); integer
            subscripts appear as their decimal string.
        uses_item: It reads `item` or `index` (only meaningful inside a map node).
        references: Every path it reads, with its root and 1-based column (for validation messages).
    """

    text: str
    root: Node
    state_paths: frozenset[tuple[str, ...]]
    uses_item: bool
    references: tuple[PathRef, ...]

    def evaluate(self, state: Mapping[str, Any], item: Any = None, index: int | None = None) -> Any:
        """Evaluate the expression.

        Args:
            state: The run's state (field -> JSON-like value).
            item: The current item of a map node (for `item`).
            index: The current item's position (for `index`); None outside map nodes.

        Returns:
            The value (a bool for conditions; `and`/`or` return an operand, as in Python).

        Raises:
            ExprEvalError: A path does not exist, operand types do not fit, division by zero, ...
        """
        try:
            return self.root.evaluate(Context(state, item, index))
        except ExprEvalError as exc:
            raise ExprEvalError(exc.message, text=self.text, path=exc.path) from None
        except RecursionError:
            raise ExprEvalError("the expression is nested too deeply", text=self.text) from None
        except Exception as exc:  # noqa: BLE001  # the contract: never a raw Python exception
            raise ExprEvalError(f"cannot evaluate: {exc}", text=self.text) from None


@lru_cache(maxsize=2048)
def parse_expr(text: str) -> Expr:
    """Parse an expression of the condition language.

    Args:
        text: The expression, e.g. `state.score >= 0.8 and not flagged`.

    Returns:
        The parsed expression (cached: equal texts give the same object).

    Raises:
        ExprError: The text is not valid, or uses something not allowed; `.column` locates it.
    """
    if len(text) > MAX_LENGTH:
        raise ExprError(f"the expression is longer than {MAX_LENGTH} characters", column=MAX_LENGTH + 1, text=text)
    if not text.strip():
        raise ExprError(f"the expression is empty; allowed: {ALLOWED}", column=1, text=text)
    # One line, same length: folded YAML may contain newlines, and columns must stay aligned.
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    lead = len(flat) - len(flat.lstrip(" "))
    source = flat.lstrip(" ")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(text, source, exc, lead) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        position = text.find("\0") + 1 if "\0" in text else 1
        raise ExprError(f"invalid expression: {exc}", column=position, text=text) from None
    converter = _Converter(text, source, lead)
    try:
        root = converter.convert(tree.body)
    except RecursionError:
        raise ExprError("the expression is nested too deeply", column=1, text=text) from None
    refs = tuple(converter.refs)
    return Expr(
        text=text,
        root=root,
        state_paths=frozenset(ref.path for ref in refs if ref.root == "state"),
        uses_item=any(ref.root != "state" for ref in refs),
        references=refs,
    )


def _syntax_error(text: str, source: str, exc: SyntaxError, lead: int) -> ExprError:
    offset = max(1, min(exc.offset or len(source) + 1, len(source) + 1))
    column = offset + lead
    msg = exc.msg or ""
    if offset <= len(source):
        char = source[offset - 1]
        what = f"{char!r} is never closed" if "never closed" in msg else f"unexpected {char!r}"
    else:
        what = "unexpected end of the expression"
    hints = [hint for pattern, hint in _HINTS if pattern.search(text)]
    advice = hints[0] if hints else "write e.g. `state.score >= 0.8 and not state.flagged`"
    return ExprError(f"{what} at column {column} of the expression; {advice}", column=column, text=text)


class _Converter:
    """Turns whitelisted Python AST nodes into expression nodes, recording every path read."""

    def __init__(self, text: str, source: str, lead: int) -> None:
        self.text = text
        self.encoded = source.encode("utf-8")
        self.lead = lead
        self.refs: list[PathRef] = []

    def column(self, byte_offset: int) -> int:
        # ast offsets are UTF-8 byte offsets; columns are characters, 1-based, in the original text.
        return len(self.encoded[:byte_offset].decode("utf-8", errors="ignore")) + self.lead + 1

    def refuse(self, what: str, node: ast.AST, byte_offset: int | None = None) -> ExprError:
        column = self.column(byte_offset if byte_offset is not None else getattr(node, "col_offset", 0))
        return ExprError(
            f"{what} is not allowed (at column {column} of the expression); allowed: {ALLOWED}",
            column=column,
            text=self.text,
        )

    def convert(self, node: ast.expr) -> Node:
        if isinstance(node, ast.Constant):
            if node.value is None or isinstance(node.value, bool | int | float | str):
                return Const(node.value)
            raise self.refuse(f"the literal {node.value!r}", node)
        if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
            return self.path(node)
        if isinstance(node, ast.BoolOp):
            return BoolOp(
                "and" if isinstance(node.op, ast.And) else "or", tuple(self.convert(value) for value in node.values)
            )
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            symbol = BINARY_OPS.get(type(node.op))
            if symbol is None:
                raise self.refuse(f"the operator {_op_text(node.op)!r}", node)
            return BinOp(symbol, self.convert(node.left), self.convert(node.right))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.List | ast.Tuple):
            return ListOf(tuple(self.convert(element) for element in node.elts))
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.refuse(_REFUSED.get(type(node), f"{type(node).__name__}"), node)

    def unary(self, node: ast.UnaryOp) -> Node:
        if isinstance(node.op, ast.Not):
            return Unary("not", self.convert(node.operand))
        if isinstance(node.op, ast.USub | ast.UAdd):
            return Unary("-" if isinstance(node.op, ast.USub) else "+", self.convert(node.operand))
        raise self.refuse("the operator '~'", node)

    def compare(self, node: ast.Compare) -> Node:
        ops: list[str] = []
        for op in node.ops:
            symbol = COMPARE_OPS.get(type(op))
            if symbol is None:
                raise self.refuse("`is` / `is not` (use == null or != null)", node)
            ops.append(symbol)
        return Compare(self.convert(node.left), tuple(ops), tuple(self.convert(c) for c in node.comparators))

    def call(self, node: ast.Call) -> Node:
        func = node.func
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.refuse("keyword or starred arguments", node)
        if isinstance(func, ast.Name) and func.id == "len":
            if len(node.args) != 1:
                raise self.refuse(f"len() with {len(node.args)} arguments (write len(x))", node)
            return Len(self.convert(node.args[0]))
        if isinstance(func, ast.Attribute) and func.attr in METHODS:
            arity = METHODS[func.attr]
            if len(node.args) != arity:
                raise self.refuse(f".{func.attr}() with {len(node.args)} arguments (it takes {arity})", node)
            return Method(self.convert(func.value), func.attr, tuple(self.convert(arg) for arg in node.args))
        if isinstance(func, ast.Attribute):
            raise self.refuse(f"the method .{func.attr}()", node, self._attr_offset(func))
        name = func.id if isinstance(func, ast.Name) else ast.unparse(func)
        raise self.refuse(f"calling {name!r} (only len(x) and the methods .startswith, .endswith, .lower)", node)

    def path(self, node: ast.Name | ast.Attribute | ast.Subscript) -> Node:
        segments: list[str | int] = []
        current: ast.expr = node
        while not isinstance(current, ast.Name):
            if isinstance(current, ast.Attribute):
                self._check_name(current.attr, current, self._attr_offset(current))
                segments.append(current.attr)
                current = current.value
            elif isinstance(current, ast.Subscript):
                segments.append(self._subscript(current))
                current = current.value
            else:
                raise self.refuse("attribute access or subscripts on anything but a path", current)
        segments.reverse()
        name = current.id
        self._check_name(name, current, current.col_offset)
        column = self.column(current.col_offset)
        if name in _CONSTANTS:
            if segments:
                raise self.refuse(f"a field of {name}", current)
            return Const(_CONSTANTS[name])
        root: Root
        if name == "state":
            if not segments or not isinstance(segments[0], str):
                raise self.refuse("`state` without a field (write state.<field>)", current)
            root = "state"
        elif name in ("item", "index"):
            root = name  # type: ignore[assignment]  # narrowed by the test above
            if name == "index" and segments:
                raise self.refuse("a field of `index` (it is an int)", current)
        elif name == "len" or name in METHODS:
            raise self.refuse(f"{name!r} without a call", current)
        else:
            root, segments = "state", [name, *segments]
        self.refs.append(PathRef(root, tuple(str(s) for s in segments), column))
        return Path(root, tuple(segments))

    def _subscript(self, node: ast.Subscript) -> str | int:
        key = node.slice
        negative = isinstance(key, ast.UnaryOp) and isinstance(key.op, ast.USub)
        if negative and isinstance(key, ast.UnaryOp) and isinstance(key.operand, ast.Constant):
            value = key.operand.value
            if isinstance(value, int) and not isinstance(value, bool):
                return -value
        if isinstance(key, ast.Constant) and isinstance(key.value, int | str) and not isinstance(key.value, bool):
            if isinstance(key.value, str):
                self._check_name(key.value, key, key.col_offset)
            return key.value
        raise self.refuse("a subscript other than an int or string literal", key)

    def _check_name(self, name: str, node: ast.AST, byte_offset: int) -> None:
        if name.startswith("__"):
            raise self.refuse(f"the name {name!r} (names starting with '__')", node, byte_offset)

    @staticmethod
    def _attr_offset(node: ast.Attribute) -> int:
        end = node.end_col_offset if node.end_col_offset is not None else node.col_offset
        return max(node.col_offset, end - len(node.attr.encode("utf-8")))


def _op_text(op: ast.operator) -> str:
    symbols = {ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
    return symbols.get(type(op), "@")
