"""The built-in ``mock`` model: outputs that satisfy the node's schema, with no provider at all.

``mock`` answers at once, ``mock/<N>ms`` after N milliseconds. Values are derived from the node id and
the rendered prompt, so different inputs give different outputs and the same inputs the same ones. A
mock script (YAML: node id → list of output objects, used in order per run, the last one repeating;
string values are prompt templates such as ``"note about {item}"``) makes runs fully deterministic;
map items count separately (per map index), so concurrency does not change which output an item gets.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from configs import render

_MOCK = re.compile(r"^mock(?:/(\d+)ms)?$")


def mock_latency_s(model: str) -> float | None:
    """Latency of a mock model name in seconds, or None when `model` is not a mock model."""
    m = _MOCK.match(model)
    if m is None:
        return None
    return int(m.group(1)) / 1000 if m.group(1) else 0.0


def _digest(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


def mock_output(schema: Mapping[str, Any], *, node: str, prompt: str) -> Any:
    """A value satisfying the JSON Schema `schema`, derived from `node` and `prompt`."""
    excerpt = " ".join(prompt.split())[:48]
    return _value(schema, node, prompt, excerpt, node)


def _value(schema: Mapping[str, Any], node: str, prompt: str, excerpt: str, path: str) -> Any:
    kind = schema.get("type")
    h = _digest(node, prompt, path)
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties", {})
        return {k: _value(v, node, prompt, excerpt, f"{path}.{k}") for k, v in props.items()}
    if kind == "array":
        items: Mapping[str, Any] = schema.get("items", {"type": "string"})
        return [_value(items, node, prompt, excerpt, f"{path}[{i}]") for i in range(3)]
    if kind == "integer":
        return h % 100
    if kind == "number":
        return round((h % 1000) / 1000, 3)
    if kind == "boolean":
        return h % 2 == 0
    return f"{path} ({h % 0xFFFF:04x}) for: {excerpt}"


class MockScript:
    """Scripted outputs per node, consumed in order per (run, node, map index); the last one repeats.

    Keying by map index keeps scripts deterministic when map items run concurrently.
    """

    def __init__(self, outputs: Mapping[str, list[Any]], *, max_runs: int = 10_000) -> None:
        self._outputs = {node: list(values) for node, values in outputs.items() if values}
        self._calls: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        self._max_runs = max_runs

    @classmethod
    def load(cls, path: Path) -> MockScript:
        """Read a mock script file.

        Raises:
            ValueError: the file is not a mapping of node id to a list of outputs.
        """
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ValueError(f"{path}: a mock script maps node ids to lists of outputs")
        return cls({str(k): v for k, v in data.items()})

    @property
    def nodes(self) -> list[str]:
        """The node ids the script answers for."""
        return sorted(self._outputs)

    def next_output(
        self, run_id: str, node: str, state: Mapping[str, Any], extra: Mapping[str, Any], index: int = 0
    ) -> Any | None:
        """The next scripted output of `node` in `run_id`, rendered; None when the node has no script."""
        values = self._outputs.get(node)
        if values is None:
            return None
        key = (run_id, node, index)
        n = self._calls.pop(key, 0)
        self._calls[key] = n + 1
        while len(self._calls) > self._max_runs:
            self._calls.popitem(last=False)
        return _render_strings(values[min(n, len(values) - 1)], state, extra)


def _render_strings(value: Any, state: Mapping[str, Any], extra: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, state, extra)
    if isinstance(value, list):
        return [_render_strings(v, state, extra) for v in value]
    if isinstance(value, dict):
        return {k: _render_strings(v, state, extra) for k, v in value.items()}
    return value
