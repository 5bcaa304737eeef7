"""Lines and columns of the keys of a YAML document, by key path (from `yaml.compose`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from configs._locs import KeyPath, format_path


@dataclass
class Positions:
    """Key path -> (line, column), both 1-based: of the key for mapping entries, of the item for lists."""

    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[KeyPath, str]] = field(default_factory=list)
    # Scalar values: key path -> (0-based line, 0-based column, style) of the value node.
    scalars: dict[KeyPath, tuple[int, int, str | None]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def find(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Return the position of `path`, or of its nearest ancestor that exists.

        Args:
            path: A key path.

        Returns:
            (line, column), 1-based; (1, 1) when nothing matches.
        """
        for end in range(len(path), -1, -1):
            mark = self.marks.get(tuple(path[:end]))
            if mark is not None:
                return mark
        return (1, 1)

    def find_in_value(self, path: Sequence[str | int], value: str, offset: int) -> tuple[int, int] | None:
        """Return the position of character `offset` of the string value at `path`.

        Works for single-line plain or quoted scalars and for literal blocks (`|`), and only when
        the source character found there is the expected one; None otherwise.

        Args:
            path: Key path of a string value.
            value: The value as parsed.
            offset: Index of a character in `value`.

        Returns:
            (line, column), 1-based, or None.
        """
        scalar = self.scalars.get(tuple(path))
        if scalar is None or not 0 <= offset < len(value):
            return None
        line, column, style = scalar
        if style in (None, "", "'", '"') and "\n" not in value:
            line, column = line, column + offset + (1 if style in ("'", '"') else 0)
        elif style == "|":
            line_in_value = value.count("\n", 0, offset)
            column_in_value = offset - (value.rfind("\n", 0, offset) + 1)
            content = self.lines[line + 1 :]
            indents = [len(text) - len(text.lstrip(" ")) for text in content if text.strip()]
            if not indents:
                return None
            line, column = line + 1 + line_in_value, indents[0] + column_in_value
        else:
            return None
        if line >= len(self.lines) or self.lines[line][column : column + 1] != value[offset]:
            return None
        return (line + 1, column + 1)


def positions(root: yaml.Node | None, text: str = "") -> Positions:
    """Map every key path of a composed YAML document to its position.

    Args:
        root: The document's root node (`yaml.compose`), or None for an empty document.
        text: The YAML source, to locate characters inside string values.

    Returns:
        The positions, plus the keys that appear twice in one mapping (YAML keeps the last one).
    """
    found = Positions(lines=text.splitlines())
    if root is not None:
        found.marks[()] = _mark(root)
        _visit(root, (), found)
    return found


def _visit(node: yaml.Node, path: KeyPath, found: Positions) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = _key(key_node)
            if key is None:
                continue
            child = (*path, key)
            if key in seen:
                found.duplicates.append((child, f"duplicate key {key!r} in {format_path(path) or 'the top level'}"))
            seen.add(key)
            found.marks[child] = _mark(key_node)
            _visit(value_node, child, found)
            if isinstance(value_node, yaml.ScalarNode):
                mark = value_node.start_mark
                found.scalars[child] = (mark.line, mark.column, value_node.style)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            found.marks[child] = _mark(item)
            _visit(item, child, found)


def _key(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str):
        return node.value
    return None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)
