"""Python annotations and pydantic models built from type strings: state fields and trigger inputs."""

from __future__ import annotations

import copy
import functools
import json
import keyword
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from configs._issues import InputError, closest
from configs._locs import data_path, format_path, short_repr
from configs._schema import FieldSpec, FlowSpec
from configs._typeref import ANY, TypeRef, incompatibility, parse_type

_EMPTY: dict[str, Any] = {"str": "", "int": 0, "float": 0.0, "bool": False, "list": [], "dict": {}}
# NaN and ±Infinity are not JSON numbers: a state holding one cannot be sent, stored or compared sanely.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
_JSON_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
MAX_INPUT_DEPTH = 64  # lists and mappings in a trigger payload (as in a flow file)


def python_type(type_str: str | TypeRef, schema: Mapping[str, Any] | None = None, *, name: str = "Obj") -> Any:
    """Return a pydantic-usable annotation for a type string.

    `object` types with a schema become generated BaseModel classes (unknown keys ignored);
    `object` without a schema is `dict[str, Any]`. Pydantic's lax mode applies: an int accepts
    `12` and `"12"` but not `"12abc"`; a float accepts ints.

    Args:
        type_str: A type string (`list[str]`, `object`, ...) or an already parsed TypeRef.
        schema: The `schema:` mapping of an object type.
        name: Class name for generated object models.

    Returns:
        The annotation.

    Raises:
        TypeStringError: The type string or schema is invalid.
    """
    ref = type_str if isinstance(type_str, TypeRef) else parse_type(type_str, schema)
    return annotation(ref, name)


@functools.lru_cache(maxsize=1024)
def annotation(ref: TypeRef, name: str = "Obj") -> Any:
    """Return the annotation of a parsed type (cached per type and class name).

    Args:
        ref: The parsed type.
        name: Class name for generated object models.

    Returns:
        The annotation.
    """
    if ref.kind == "str":
        return str
    if ref.kind == "int":
        return int
    if ref.kind == "float":
        return FiniteFloat
    if ref.kind == "bool":
        return bool
    if ref.kind == "list":
        return list[annotation(ref.item, f"{name}Item") if ref.item else Any]  # type: ignore[misc]
    if ref.kind == "dict":
        return dict[str, annotation(ref.item, f"{name}Value") if ref.item else Any]  # type: ignore[misc]
    if ref.kind == "object" and ref.fields is not None:
        fields: dict[str, tuple[Any, dict[str, Any]]] = {
            field_name: (annotation(field_ref, f"{name}{_camel(field_name)}"), {})
            for field_name, field_ref in ref.fields
        }
        return build_model(name, fields, extra="ignore")
    if ref.kind == "object":
        return dict[str, Any]
    return Any


def build_model(name: str, fields: Mapping[str, tuple[Any, Mapping[str, Any]]], *, extra: str) -> type[BaseModel]:
    """Create a pydantic model whose fields may have any name (aliases hide unusable ones).

    Args:
        name: Class name.
        fields: Field name -> (annotation, keyword arguments of `pydantic.Field`).
        extra: `"ignore"` or `"forbid"` for unknown keys.

    Returns:
        The model class; it validates and dumps by the original names.
    """
    config = ConfigDict(
        extra="forbid" if extra == "forbid" else "ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        validate_default=True,
    )
    definitions: dict[str, Any] = {}
    for index, (field_name, (ann, info)) in enumerate(fields.items()):
        if _usable_name(field_name):
            definitions[field_name] = (ann, Field(**info))
        else:
            definitions[f"field_{index}"] = (ann, Field(**info, alias=field_name))
    model: type[BaseModel] = create_model(_class_name(name), __config__=config, **definitions)
    return model


def types_compatible(
    produced: str | TypeRef,
    expected: str | TypeRef,
    *,
    produced_schema: Mapping[str, Any] | None = None,
    expected_schema: Mapping[str, Any] | None = None,
) -> bool:
    """Tell whether values of type `produced` can be stored in a field of type `expected`.

    Nested objects are compared field by field; int is compatible with float; untyped lists,
    dicts and objects are compatible with any of their kind.

    Args:
        produced: Type string (or TypeRef) of what a node produces.
        expected: Type string (or TypeRef) of the state field.
        produced_schema: `schema:` of an object `produced`.
        expected_schema: `schema:` of an object `expected`.

    Returns:
        True when compatible.

    Raises:
        TypeStringError: A type string or schema is invalid.
    """
    have = produced if isinstance(produced, TypeRef) else parse_type(produced, produced_schema)
    want = expected if isinstance(expected, TypeRef) else parse_type(expected, expected_schema)
    return incompatibility(have, want) is None


def field_ref(field: FieldSpec) -> TypeRef:
    """Return the parsed type of a state field, or ANY when it is invalid (validation reports it).

    Args:
        field: The state field.

    Returns:
        Its type.
    """
    try:
        return parse_type(field.type, field.schema_)
    except ValueError:
        return ANY


def empty_value(ref: TypeRef) -> Any:
    """Return the default of a field that gives none: "" / 0 / 0.0 / False / [] / {} / None.

    Args:
        ref: The field's type.

    Returns:
        A fresh empty value.
    """
    return copy.deepcopy(_EMPTY.get(ref.kind))


def state_model(spec: FlowSpec) -> type[BaseModel]:
    """Return the pydantic model of a flow's whole state (cached per state definition).

    Required fields without a default are required; the others default to their `default:` or
    to a type-appropriate empty value. Unknown keys are rejected.

    Args:
        spec: The flow.

    Returns:
        The model class.
    """
    fields = {
        name: field.model_dump(mode="json", by_alias=True, exclude_unset=True)
        for name, field in spec.state.fields.items()
    }
    return _state_model(spec.flow.name, json.dumps(fields))


@functools.lru_cache(maxsize=256)
def _state_model(flow_name: str, fields_json: str) -> type[BaseModel]:
    raw: dict[str, Any] = json.loads(fields_json)
    definitions: dict[str, tuple[Any, dict[str, Any]]] = {}
    for name, data in raw.items():
        field = FieldSpec.model_validate(data)
        ref = field_ref(field)
        ann = annotation(ref, f"{flow_name}_{name}")
        if ref.kind == "object":
            ann = ann | None
        info: dict[str, Any]
        if field.required and not field.has_default:
            info = {"description": field.description}
        else:
            default = field.default if field.has_default else empty_value(ref)
            if default is None and ref.kind not in ("object", "any"):
                ann = ann | None
            info = {
                "default_factory": functools.partial(copy.deepcopy, default),
                "description": field.description,
            }
        definitions[name] = (ann, info)
    return build_model(f"{flow_name}_state", definitions, extra="forbid")


def initial_state(spec: FlowSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate trigger inputs against the state fields and return the whole initial state.

    Args:
        spec: The flow.
        inputs: The trigger's inputs: state field name -> value.

    Returns:
        The JSON-able state with defaults applied.

    Raises:
        InputError: Unknown input keys, missing required inputs or wrong types (all of them).
    """
    if not isinstance(inputs, Mapping):
        raise InputError([f"inputs must be a mapping of state field name to value, got {short_repr(inputs)}"])
    fields = spec.state.fields
    problems: list[str] = []
    for key in inputs:
        if key not in fields:
            hint = closest(str(key), fields)
            also = f"; did you mean {hint!r}?" if hint else ""
            problems.append(f"unknown input {key!r}{also} (state fields: {', '.join(fields) or 'none'})")
    for name, field in fields.items():
        if field.required and not field.has_default and name not in inputs:
            problems.append(f"missing required input {name!r} ({field.type})")
    known = {key: value for key, value in inputs.items() if key in fields}
    non_finite, too_deep = scan_json(known)
    problems += [f"input {where!r}: {what}" for where, what in json_problems(non_finite, too_deep)]
    if too_deep is not None:  # pydantic would fail on it with a bare ValueError; nothing sane is that deep
        raise InputError(problems)
    model = state_model(spec)
    try:
        state = model.model_validate(known)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if error["type"] == "missing" and len(error["loc"]) == 1:
                continue  # reported above, with the field's type
            if error["type"] == "finite_number" and isinstance(error.get("input"), float):
                continue  # reported above by scan_json
            path = format_path(data_path(error["loc"], known, missing=error["type"] == "missing"))
            top = str(error["loc"][0])
            expected = fields[top].type if top in fields else "?"
            problems.append(f"input {path!r} ({expected}): {error['msg']}, got {short_repr(error.get('input'))}")
        raise InputError(problems) from None
    if problems:
        raise InputError(problems)
    dumped: dict[str, Any] = state.model_dump(mode="json", by_alias=True)
    return dumped


def scan_json(
    value: Any, limit: int = 100
) -> tuple[list[tuple[tuple[str | int, ...], float]], tuple[str | int, ...] | None]:
    """Where NaN or ±Infinity hide in a JSON-like value (also under untyped fields, `dict` and `list`), and the
    path of a value nested deeper than ``MAX_INPUT_DEPTH`` if there is one.

    Walked with a stack, not recursion, and paths are kept as links to the parent (rebuilt only for what is
    found): a trigger payload may be nested arbitrarily deep.
    """
    found: list[tuple[tuple[str | int, ...], float]] = []
    links: list[tuple[int, str | int]] = []  # node -> (its parent node, its key); node -1 is the root

    def path_of(node: int) -> tuple[str | int, ...]:
        path: list[str | int] = []
        while node >= 0:
            node, key = links[node]
            path.append(key)
        return tuple(reversed(path))

    stack: list[tuple[int, int, Any]] = [(-1, 0, value)]
    while stack and len(found) < limit:
        node, depth, current = stack.pop()
        if isinstance(current, float) and not math.isfinite(current):
            found.append((path_of(node), current))
            continue
        if not isinstance(current, Mapping | list | tuple):
            continue
        if depth >= MAX_INPUT_DEPTH:
            return found, path_of(node)
        items: Any = ((str(k), v) for k, v in current.items()) if isinstance(current, Mapping) else enumerate(current)
        for key, child in items:
            links.append((node, key))
            stack.append((len(links) - 1, depth + 1, child))
    return sorted(found, key=lambda item: [str(p) for p in item[0]]), None


def json_problems(
    non_finite: list[tuple[tuple[str | int, ...], float]], too_deep: tuple[str | int, ...] | None
) -> list[tuple[str, str]]:
    """What ``scan_json`` found, as (path, problem) pairs for messages."""
    found = [
        (
            _shorten(format_path(path)),
            f"{_JSON_NAMES.get(str(value), str(value))} is not a finite number (NaN and Infinity are not JSON numbers)",
        )
        for path, value in non_finite
    ]
    if too_deep is not None:
        found.append((_shorten(format_path(too_deep[:8]) + "..."), f"nested more than {MAX_INPUT_DEPTH} levels deep"))
    return found


def _shorten(path: str, limit: int = 120) -> str:
    """A path cut in the middle when it is too long to read (a payload nested thousands deep)."""
    return path if len(path) <= limit else f"{path[: limit // 2]}…{path[-limit // 2 :]}"


def _usable_name(name: str) -> bool:
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith(("_", "model_"))
        and not hasattr(BaseModel, name)
    )


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _class_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned.isidentifier() else f"M_{cleaned}"
