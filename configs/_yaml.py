"""The YAML loader of flow files, bounded: size of the text, nesting depth, aliases and what they expand to.

A 710-byte file of nested aliases ("billion laughs") expands to 10⁹ values once anything walks it; 10,000
nested lists overflow the recursion of every tree walk. Both are refused while the document is composed,
before either can cost memory or time, with the position of the alias or collection that crossed the limit.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml

from configs.errors import CaActorsError

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_VALUES = 200_000  # scalars and collections of the document with every alias expanded
MAX_CHARS = 10_000_000  # characters of its scalars, aliases expanded

_BOOL_TAG = "tag:yaml.org,2002:bool"


class YAMLLimitError(CaActorsError, yaml.MarkedYAMLError):
    """The document is valid YAML but exceeds a limit; ``problem`` says which, ``problem_mark`` where."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that enforces the limits above while composing, and keeps mapping keys as written
    (YAML 1.1 would turn `on:` of retry.on into True)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._values = 0
        self._chars = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, chars) it expands to
        self._open: set[str] = set()  # anchors of the collections being composed (an alias to one is a cycle)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # types-PyYAML leaves the parser untyped
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise YAMLLimitError(
                    f"the alias *{event.anchor} refers to the collection that contains it; "
                    "a flow file cannot be recursive",
                    event.start_mark,
                )
            node = super().compose_node(parent, index)
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(
                    f"more than {MAX_ALIASES} aliases; a flow file may use at most that many", event.start_mark
                )
            values, chars = self._sizes.get(id(node), (1, 0))
            self._grow(values, chars, f"the alias *{event.anchor}", event.start_mark)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YAMLLimitError(
                f"nested more than {MAX_DEPTH} levels deep; flow files are limited to {MAX_DEPTH} levels",
                event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        before = (self._values, self._chars)
        scalar = event.value if isinstance(event, yaml.ScalarEvent) else ""
        self._grow(1, len(scalar), "this value", event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)
        self._sizes[id(node)] = (self._values - before[0], self._chars - before[1])
        return node

    def _grow(self, values: int, chars: int, what: str, mark: yaml.Mark) -> None:
        self._values += values
        self._chars += chars
        if self._values > MAX_VALUES:
            raise YAMLLimitError(
                f"{what} makes the document expand to more than {MAX_VALUES} values "
                "(aliases are counted each time they are used)",
                mark,
            )
        if self._chars > MAX_CHARS:
            raise YAMLLimitError(
                f"{what} makes the document expand to more than {MAX_CHARS} characters "
                "(aliases are counted each time they are used)",
                mark,
            )

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, yaml.MappingNode):  # else (`!!set` on a list) the base class reports it
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL_TAG:
                    key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's scalar constructors trust an explicit tag: `!!int` on an empty value is an IndexError,
        # `!!timestamp x` an AttributeError. Each becomes a located YAML error.
        try:
            return super().construct_object(node, deep)  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        except (TypeError, ValueError, AttributeError, IndexError, KeyError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} cannot be read as {tag} ({type(exc).__name__})", node.start_mark
            ) from None


def size_problem(size: int) -> str | None:
    """Why a flow text of ``size`` UTF-8 bytes is refused, or None when it is small enough."""
    if size <= MAX_BYTES:
        return None
    return f"the file is over {MAX_BYTES} bytes (the limit of a flow file); move large inline values to files"


def text_problem(text: str) -> str | None:
    """Why a flow text is refused for its size, or None."""
    if len(text) <= MAX_BYTES // 4:  # cannot be over the limit: spare encoding small texts
        return None
    return size_problem(len(text.encode("utf-8", errors="surrogatepass")))
