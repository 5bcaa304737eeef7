"""What a node's LLM must answer: the output model, its JSON Schema, and validation of answers."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from configs._issues import OutputError
from configs._locs import data_path, format_path, short_repr
from configs._schema import FlowSpec, NodeSpec, Reducer
from configs._typeref import ANY, TypeRef, parse_type
from configs._types import annotation, build_model, field_ref, json_problems, scan_json

# (output name, type, description) for each output of a node, in `outputs` order.
OutputFields = tuple[tuple[str, TypeRef, str], ...]

_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def output_fields(spec: FlowSpec, node: NodeSpec) -> OutputFields:
    """Return each output of a node with its type: from `output_schema`, else from the state field.

    Args:
        spec: The flow.
        node: One of its nodes.

    Returns:
        (name, type, description) per output name, in `outputs` order.
    """
    declared: dict[str, tuple[TypeRef, str]] = {}
    schema = node.output_schema
    if schema is not None and schema.type.strip() == "object":
        for field in schema.fields:
            try:
                declared[field.name] = (parse_type(field.type, field.schema_), field.description)
            except ValueError:
                declared[field.name] = (ANY, field.description)
    result: list[tuple[str, TypeRef, str]] = []
    for name in node.outputs:
        if name in declared:
            ref, description = declared[name]
        elif name in spec.state.fields:
            state_field = spec.state.fields[name]
            ref, description = output_slot(field_ref(state_field), state_field.reducer), state_field.description
        else:
            ref, description = ANY, ""
        result.append((name, ref, description))
    return tuple(result)


def output_slot(field: TypeRef, reducer: Reducer | None) -> TypeRef:
    """Return the type a node output must have to be written into a state field of type `field`.

    Args:
        field: The state field's type.
        reducer: Its reducer; `append` takes one item (`T` into `list[T]`), the others the field's type.

    Returns:
        The output type.
    """
    if reducer == "append":
        return field.item or ANY if field.kind == "list" else ANY
    return field


def output_model(spec: FlowSpec, node: NodeSpec) -> type[BaseModel]:
    """Return the pydantic model of a node's answer: one required field per output name.

    Args:
        spec: The flow.
        node: One of its nodes.

    Returns:
        The model class (cached per node id and output types).
    """
    return _output_model(f"{spec.flow.name}_{node.id}_output", output_fields(spec, node))


@functools.lru_cache(maxsize=1024)
def _output_model(name: str, fields: OutputFields) -> type[BaseModel]:
    definitions = {
        field_name: (annotation(ref, f"{name}_{field_name}"), {"description": description})
        for field_name, ref, description in fields
    }
    return build_model(name, definitions, extra="ignore")


def output_json_schema(spec: FlowSpec, node: NodeSpec) -> dict[str, Any]:
    """Return the JSON Schema of what a node's LLM must answer, with nested objects inlined.

    Args:
        spec: The flow.
        node: One of its nodes.

    Returns:
        An object schema with `properties`, `required` (every output) and
        `additionalProperties: false`; no `$defs` or `$ref`.
    """
    fields = output_fields(spec, node)
    properties: dict[str, Any] = {}
    for name, ref, description in fields:
        prop = ref_json_schema(ref)
        if description:
            prop["description"] = description
        properties[name] = prop
    schema: dict[str, Any] = {
        "title": node.id,
        "type": "object",
        "properties": properties,
        "required": [name for name, _, _ in fields],
        "additionalProperties": False,
    }
    return schema


def ref_json_schema(ref: TypeRef) -> dict[str, Any]:
    """Return the JSON Schema of one parsed type.

    Args:
        ref: The type.

    Returns:
        A JSON Schema (a fresh dict).
    """
    if ref.kind in _JSON_TYPES:
        return {"type": _JSON_TYPES[ref.kind]}
    if ref.kind == "list":
        return {"type": "array", "items": ref_json_schema(ref.item)} if ref.item else {"type": "array"}
    if ref.kind == "dict":
        values: Any = ref_json_schema(ref.item) if ref.item else True
        return {"type": "object", "additionalProperties": values}
    if ref.kind == "object" and ref.fields is not None:
        return {
            "type": "object",
            "properties": {name: ref_json_schema(field) for name, field in ref.fields},
            "required": [name for name, _ in ref.fields],
            "additionalProperties": False,
        }
    if ref.kind == "object":
        return {"type": "object"}
    return {}


def validate_output(spec: FlowSpec, node: NodeSpec, raw: Any) -> dict[str, Any]:
    """Check an LLM answer against a node's outputs and return it as output name -> value.

    A node with a single output also accepts the bare value (`"hello"` for `outputs: [result]`).

    Args:
        spec: The flow.
        node: The node that produced the answer.
        raw: The parsed JSON answer.

    Returns:
        JSON-able values, one per output name (unknown keys dropped).

    Raises:
        OutputError: The answer does not fit; the message lists every problem and is meant to be
            sent back to the LLM.
    """
    fields = output_fields(spec, node)
    names = [name for name, _, _ in fields]
    expected = describe_expected(fields)
    if isinstance(raw, Mapping) and (len(names) != 1 or names[0] in raw):
        data: Any = raw
    elif len(names) == 1:
        data = {names[0]: raw}
    else:
        raise OutputError([f"expected a JSON object, got {short_repr(raw)}"], expected=expected)
    non_finite, too_deep = scan_json(data)
    if non_finite or too_deep is not None:  # pydantic would drop NaN in untyped values, or fail on the depth
        problems = [f"{where or 'answer'}: {what}" for where, what in json_problems(non_finite, too_deep)]
        raise OutputError(problems, expected=expected)
    model = output_model(spec, node)
    try:
        answer = model.model_validate(data)
    except ValidationError as exc:
        raise OutputError(_problems(exc, data, fields), expected=expected) from None
    dumped: dict[str, Any] = answer.model_dump(mode="json", by_alias=True)
    return dumped


def describe_expected(fields: OutputFields) -> str:
    """Describe the expected answer in one phrase, naming every key and its type.

    Args:
        fields: The node's output fields.

    Returns:
        E.g. `a JSON object with keys: "article" (str), "word_count" (int)`.
    """
    if not fields:
        return "a JSON object"
    keys = ", ".join(f'"{name}" ({ref})' for name, ref, _ in fields)
    return f"a JSON object with keys: {keys}"


def _problems(exc: ValidationError, data: Any, fields: OutputFields) -> list[str]:
    types = {name: ref for name, ref, _ in fields}
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        missing = error["type"] == "missing"
        path = data_path(error["loc"], data, missing=missing)
        where = format_path(path) or "answer"
        ref = _ref_at(types, path)
        kind = f" (expected {ref})" if ref is not None and ref.kind != "any" else ""
        if missing:
            problems.append(f"{where}: missing{kind}")
        else:
            problems.append(f"{where}{kind}: {error['msg']}, got {short_repr(error.get('input'))}")
    return problems


def _ref_at(types: Mapping[str, TypeRef], path: Sequence[str | int]) -> TypeRef | None:
    if not path or not isinstance(path[0], str) or path[0] not in types:
        return None
    ref: TypeRef | None = types[path[0]]
    for part in path[1:]:
        if ref is None:
            return None
        if ref.kind in ("list", "dict"):
            ref = ref.item
        elif ref.kind == "object":
            ref = ref.field(str(part))
        else:
            return None
    return ref
