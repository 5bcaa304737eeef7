"""Layer 1 of the sandbox, in this process: what RestrictedPython's policy lets node code do, and refuses.

(Only the compiler and the guards: every real execution runs in an isolated process, see
tests/integration/test_sandbox_corpus.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.sandbox import PRESETS, limits_for
from actors.sandbox._policy import CompileCache, PolicyViolation, check_source, compile_source, restricted_globals


def run(code: str, **data: Any) -> Any:
    scope = restricted_globals(data)
    exec(compile_source(code), scope)
    return scope.get("result")


def test_ordinary_python_works_under_the_policy() -> None:
    code = """
import math, json, re, statistics, datetime, itertools, functools, collections
from math import sqrt
x = 1
x += 2
d = {}
d["k"] = x
squares = [n * n for n in inputs["xs"] if n > 1]
pairs = {k: v for k, v in zip("ab", squares)}

def describe(values, *, unit="u"):
    return f"{len(values)} {unit}: {sum(values):>4} {values!r}"

result = {
    "x": x,
    "d": d,
    "squares": squares,
    "pairs": pairs,
    "text": describe(squares),
    "root": sqrt(16),
    "json": json.loads(json.dumps({"a": [1]})),
    "re": re.findall(r"\\d+", "a1b22"),
    "mean": statistics.mean([1, 2, 3]),
    "date": datetime.date(2024, 1, 2).isoformat(),
    "chain": list(itertools.chain([1], [2])),
    "reduce": functools.reduce(lambda a, b: a + b, [1, 2, 3]),
    "count": dict(collections.Counter("aab")),
    "pi": round(math.pi, 2),
}
"""
    out = run(code, inputs={"xs": [1, 2, 3]})
    assert out["x"] == 3
    assert out["d"] == {"k": 3}
    assert out["squares"] == [4, 9]
    assert out["pairs"] == {"a": 4, "b": 9}
    assert out["text"] == "2 u:   13 [4, 9]"
    assert out["root"] == 4.0
    assert out["json"] == {"a": [1]}
    assert out["re"] == ["1", "22"]
    assert out["mean"] == 2
    assert out["date"] == "2024-01-02"
    assert out["chain"] == [1, 2]
    assert out["reduce"] == 6
    assert out["count"] == {"a": 2, "b": 1}
    assert out["pi"] == 3.14


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("result = getattr((), '__class__')", "'__class__' is not allowed"),
        ("result = '{0}'.format(1)", "'format' is not allowed"),
        ("result = str.format_map('{a}', {'a': 1})", "'format_map' is not allowed"),
        ("g = (x for x in [1])\nresult = getattr(g, 'gi_frame')", "'gi_frame' is not allowed"),
        ("import os", "import of 'os' is not allowed"),
        ("from json import codecs", "json.codecs is not allowed"),
        ("import json\njson.dumps = 1", "cannot be written"),
        ("result = open('/etc/passwd')", "open() is not allowed"),
        ("result = type(1)", "type() is not allowed"),
    ],
)
def test_the_guards_refuse_at_run_time(code: str, says: str) -> None:
    with pytest.raises(PolicyViolation) as info:
        run(code)
    assert says in str(info.value)


def test_the_compiler_refuses_private_names_and_except_star() -> None:
    assert any("__class__" in e for e in check_source("result = ().__class__"))
    assert any("TryStar" in e for e in check_source("try:\n    pass\nexcept* ValueError:\n    pass"))
    assert check_source("result = 1") == []


def test_compiled_code_is_cached_by_the_hash_of_its_source() -> None:
    cache = CompileCache(size=2)
    first = cache.get("result = 1")
    assert cache.get("result = 1") is first
    assert cache.hits == 1
    cache.get("result = 2")
    cache.get("result = 3")  # the oldest entry goes
    assert cache.get("result = 1") is not first


def test_presets_and_overrides() -> None:
    low = limits_for(None)
    assert low == PRESETS["low"]
    high = limits_for("high", timeout=3, memory_mb=300, network=True)
    assert (high.timeout_s, high.memory_mb, high.cpu_s, high.network) == (3.0, 300, PRESETS["high"].cpu_s, True)
    unsafe = limits_for("low", enabled=False)
    assert not unsafe.restricted
    assert not unsafe.isolated
