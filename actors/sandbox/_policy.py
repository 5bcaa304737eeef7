"""Layer 1: RestrictedPython's compiler and the policy node code runs under (guards, builtins, imports).

Compiled code is cached by the SHA-256 of its source. Everything here runs inside a sandbox worker
process (`_child`), except `check_source`, which the parent may use to report policy errors early.

The policy, in short: no name or attribute starting with ``_``; no ``format``/``format_map`` (they
read attributes through format strings, CVE-2023-41039); no frame, code, traceback or generator
internals (``gi_frame``, ``f_globals``, ``tb_frame``, ... CVE-2023-37271); no ``try/except*``
(CVE-2024-47532, CVE-2025-22153: refused by RestrictedPython's compiler); a small allow-list of
builtins; ``import`` only of a few pure modules, each reduced to an allow-list of names.
"""

from __future__ import annotations

import collections
import datetime
import functools
import hashlib
import itertools
import json
import math
import operator
import re
import statistics
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from configs.errors import CaActorsError


class PolicyViolation(CaActorsError, PermissionError):
    """Node code did something the policy refuses (the message says what)."""


# Attribute names refused at run time whatever the object (besides every name starting with "_").
REFUSED_ATTRIBUTES = frozenset(
    {
        *INSPECT_ATTRIBUTES,
        "format",
        "format_map",
        "mro",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "tb_frame",
        "tb_next",
        "with_traceback",
        "func_globals",
    }
)


# The modules `import` may give, each reduced to these names (nothing that reads files, the
# environment or the interpreter; `collections.namedtuple` is left out: it compiles source itself).
def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


ALLOWED_MODULES: Mapping[str, tuple[Any, frozenset[str]]] = {
    "math": (math, frozenset(name for name in dir(math) if not name.startswith("_"))),
    "json": (json, frozenset({"dumps", "loads", "JSONDecodeError"})),
    "re": (
        re,
        _names(
            "compile search match fullmatch findall finditer sub subn split escape error "
            "IGNORECASE I MULTILINE M DOTALL S VERBOSE X ASCII A"
        ),
    ),
    "datetime": (datetime, frozenset({"date", "datetime", "time", "timedelta", "timezone", "MINYEAR", "MAXYEAR"})),
    "statistics": (
        statistics,
        _names(
            "mean fmean geometric_mean harmonic_mean median median_low median_high median_grouped mode multimode "
            "pstdev pvariance stdev variance quantiles correlation covariance linear_regression StatisticsError"
        ),
    ),
    "itertools": (itertools, frozenset(name for name in dir(itertools) if not name.startswith("_"))),
    "functools": (functools, frozenset({"reduce", "partial", "cmp_to_key", "lru_cache", "cache"})),
    "collections": (collections, frozenset({"Counter", "OrderedDict", "defaultdict", "deque", "ChainMap"})),
}

_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "complex", "dict", "divmod",
    "enumerate", "filter", "float", "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "len", "list",
    "map", "max", "min", "next", "oct", "ord", "pow", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "str", "sum", "tuple", "zip", "None", "False", "True",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "NameError", "OverflowError", "RuntimeError", "StopIteration", "TypeError",
    "ValueError", "ZeroDivisionError",
)  # fmt: skip

_INPLACE: Mapping[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}

_MISSING = object()


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """``obj.name`` under the policy (also what the code's ``getattr`` is).

    Raises:
        PolicyViolation: the name starts with ``_`` or is refused.
    """
    if type(name) is not str:
        raise PolicyViolation("attribute names must be str")
    if name.startswith("_"):
        raise PolicyViolation(f"attribute {name!r} is not allowed (names starting with '_' are private)")
    if name in REFUSED_ATTRIBUTES:
        raise PolicyViolation(f"attribute {name!r} is not allowed")
    if isinstance(obj, types.ModuleType):
        raise PolicyViolation("module objects cannot be read directly")
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def _hasattr(obj: Any, name: str) -> bool:
    try:
        guarded_getattr(obj, name)
    except (AttributeError, PolicyViolation):
        return False
    return True


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def _getiter(obj: Iterable[Any]) -> Any:
    return iter(obj)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    try:
        return _INPLACE[op](target, value)
    except KeyError:
        raise PolicyViolation(f"operator {op!r} is not allowed") from None


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _write(obj: Any) -> Any:
    if isinstance(obj, types.ModuleType | type | _SafeModule):
        raise PolicyViolation("modules and classes cannot be written to")
    return full_write_guard(obj)


def _import(
    name: str,
    globals: Mapping[str, Any] | None = None,
    locals: Mapping[str, Any] | None = None,
    fromlist: Iterable[str] | None = (),
    level: int = 0,
) -> Any:
    """The code's ``__import__``: a reduced copy of an allowed module, else a `PolicyViolation`."""
    if level != 0 or name not in ALLOWED_MODULES:
        raise PolicyViolation(f"import of {name!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_MODULES))})")
    module, names = ALLOWED_MODULES[name]
    for wanted in fromlist or ():
        if wanted not in names:
            raise PolicyViolation(f"{name}.{wanted} is not allowed")
    return _SafeModule(name, {n: getattr(module, n) for n in names if hasattr(module, n)})


class _SafeModule:
    """What ``import`` gives node code: the allowed names of a module, and a clear refusal for the rest."""

    def __init__(self, name: str, members: Mapping[str, Any]) -> None:
        self.__dict__.update(members)
        self.__dict__["_SafeModule__name"] = name

    def __getattr__(self, attr: str) -> Any:
        raise PolicyViolation(f"{self.__dict__['_SafeModule__name']}.{attr} is not allowed")

    def __setattr__(self, attr: str, value: Any) -> None:
        raise PolicyViolation("modules cannot be written to")


# Builtins that are not there, named so that using one says why rather than "is not defined".
_REFUSED_BUILTINS = (
    "open", "eval", "exec", "compile", "globals", "locals", "vars", "dir", "type", "input", "memoryview",
    "object", "super", "property", "classmethod", "staticmethod", "help", "exit", "quit", "setattr", "delattr",
    "iter", "aiter", "anext", "breakpoint", "format",
)  # fmt: skip


def _refused(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PolicyViolation(f"{name}() is not allowed in the sandbox")

    return refuse


def safe_builtins() -> dict[str, Any]:
    """The builtins node code sees (a fresh dict: code cannot change another execution's)."""
    import builtins

    found: dict[str, Any] = {name: _refused(name) for name in _REFUSED_BUILTINS}
    found.update({name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES})
    found.update(
        {
            "getattr": guarded_getattr,
            "hasattr": _hasattr,
            "__import__": _import,
            "PolicyViolation": PolicyViolation,
        }
    )
    return found


def restricted_globals(data: Mapping[str, Any]) -> dict[str, Any]:
    """The globals one execution starts with: the guards, the builtins and `data` (inputs, memory, ...)."""
    return {
        "__builtins__": safe_builtins(),
        "__name__": "node",
        "_getattr_": guarded_getattr,
        "_getitem_": _getitem,
        "_getiter_": _getiter,
        "_write_": _write,
        "_inplacevar_": _inplacevar,
        "_apply_": _apply,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_print_": PrintCollector,
        **data,
    }


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


class CompileCache:
    """Compiled node code by the SHA-256 of its source (restricted or plain), at most `size` entries."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._codes: collections.OrderedDict[tuple[str, bool], types.CodeType] = collections.OrderedDict()
        self.hits = 0

    def get(self, source: str, *, restricted: bool = True) -> types.CodeType:
        """The code object of `source`.

        Raises:
            PolicyViolation: the source breaks the policy (RestrictedPython's messages, joined).
            SyntaxError: the source is not Python.
        """
        key = (source_hash(source), restricted)
        code = self._codes.get(key)
        if code is not None:
            self.hits += 1
            self._codes.move_to_end(key)
            return code
        code = compile_source(source) if restricted else compile(source, "<node>", "exec")
        self._codes[key] = code
        if len(self._codes) > self._size:
            self._codes.popitem(last=False)
        return code


def check_source(source: str) -> list[str]:
    """The policy errors of `source` (empty: it compiles under the policy)."""
    result = compile_restricted_exec(source, filename="<node>")
    return list(result.errors)


def compile_source(source: str) -> types.CodeType:
    """Compile `source` under RestrictedPython's policy.

    Raises:
        PolicyViolation: the source breaks the policy or is not Python.
    """
    result = compile_restricted_exec(source, filename="<node>")
    if result.errors or result.code is None:
        raise PolicyViolation("; ".join(result.errors) or "the code does not compile")
    return result.code
