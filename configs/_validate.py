"""Checks of a parsed flow before anything runs: names, state fields, node outputs and prompts.

Every problem is collected (never only the first) with the key path it belongs to; the loader
turns key paths into lines and columns. Edge and graph checks live in `_edges`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from pydantic import TypeAdapter, ValidationError

from configs._code import check_code, check_ignored
from configs._control import check_foreach, check_on_error, check_reducers, error_targets, map_runtime_names
from configs._edges import check_edges
from configs._graph import build_graph
from configs._issues import closest
from configs._locs import KeyPath, Problem, short_repr
from configs._outputs import output_slot
from configs._schema import (
    END,
    GATE_METRICS,
    SCHEMA_VERSIONS,
    SCORER_KINDS,
    START,
    FlowSpec,
    NodeSpec,
    scorer_metric,
)
from configs._scope import Scope, Unresolved
from configs._templates import TemplateSyntaxError, is_template, placeholders, single_placeholder
from configs._typeref import ANY, TypeRef, TypeStringError, incompatibility, parse_type
from configs._types import annotation

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def check_flow(spec: FlowSpec, *, tools: Collection[str] | None = None) -> list[Problem]:
    """Return every problem of a parsed flow (errors and warnings).

    Args:
        spec: The flow, as parsed by the pydantic models.
        tools: Tool names nodes may use (None: not checked).

    Returns:
        Problems in the order of the checks: header, state, nodes, edges, graph.
    """
    problems: list[Problem] = []
    if spec.schema_version not in SCHEMA_VERSIONS:
        problems.append(
            Problem(
                ("schema_version",),
                f"unsupported schema_version {spec.schema_version!r}; valid versions: {', '.join(SCHEMA_VERSIONS)}",
                closest(spec.schema_version, SCHEMA_VERSIONS),
            )
        )
    problems += _check_token(spec.flow.name, "flow name", ("flow", "name"))
    state_types = _check_state(spec, problems)
    _check_node_ids(spec, problems)
    problems += check_reducers(spec, state_types)
    problems += check_foreach(spec, state_types)
    problems += check_on_error(spec)
    if tools is not None:
        problems += _check_tools(spec, tools)
    maps = map_runtime_names(state_types, build_graph(spec)[0])
    handlers = error_targets(spec)
    scopes: dict[str, Scope] = {}
    for index, node in enumerate(spec.nodes):
        _check_outputs(spec, index, node, state_types, problems)
        scope = Scope(state_types, runtime={"memory": ANY, **maps.get(node.id, {})})
        if node.id in handlers:
            scope.runtime["error"] = TypeRef("str")
        _check_inputs(index, node, scope, problems)
        _check_prompt(index, node, scope, problems)
        problems += check_code(spec, index, node)
        scopes.setdefault(node.id, scope)
    problems += check_edges(spec, state_types)
    problems += _check_ab_test(spec, scopes)
    problems += _check_gates(spec)
    problems += check_ignored(spec)
    return problems


def _check_ab_test(spec: FlowSpec, scopes: Mapping[str, Scope]) -> list[Problem]:
    ab = spec.config.ab_test
    if ab is None:
        return []
    base: KeyPath = ("config", "ab_test")
    problems: list[Problem] = []
    if len(ab.variants) < 2:
        problems.append(
            Problem(
                (*base, "variants") if ab.variants else base,
                f"an A/B test needs at least 2 variants, got {len(ab.variants)}",
            )
        )
    seen: dict[str, int] = {}
    for v, variant in enumerate(ab.variants):
        vpath: KeyPath = (*base, "variants", v)
        problems += _check_token(variant.name, "variant name", (*vpath, "name"))
        if variant.name in seen:
            problems.append(
                Problem(
                    (*vpath, "name"),
                    f"duplicate variant name {variant.name!r} (first used by variants[{seen[variant.name]}])",
                )
            )
        seen.setdefault(variant.name, v)
        for node_id, override in variant.nodes.items():
            npath: KeyPath = (*vpath, "nodes", node_id)
            if node_id not in scopes:
                problems.append(
                    Problem(
                        npath,
                        f"unknown node {node_id!r} (nodes: {', '.join(scopes) or 'none'})",
                        closest(node_id, scopes),
                    )
                )
            elif override.prompt is not None and override.prompt.strip().startswith("mlflow:/prompts/"):
                problems.append(
                    Problem(
                        (*npath, "prompt"),
                        "a variant's prompt is its text; registry prompts (mlflow:/prompts/...) are for nodes",
                        "paste the prompt text, or register the variant's text and point the node at it",
                    )
                )
            elif override.prompt is not None:
                index = next(i for i, node in enumerate(spec.nodes) if node.id == node_id)
                node = spec.nodes[index].model_copy(update={"prompt": override.prompt})
                found: list[Problem] = []
                _check_prompt(index, node, scopes[node_id], found)
                problems += [Problem((*npath, "prompt"), p.message, p.suggestion, p.severity, p.offset) for p in found]
    for k, text in enumerate(ab.scorers):
        problems += _check_scorer(spec, text, (*base, "scorers", k))
    return problems


def _check_scorer(spec: FlowSpec, text: str, path: KeyPath) -> list[Problem]:
    kind, _, rest = text.partition(":")
    if kind not in SCORER_KINDS:
        return [
            Problem(
                path,
                f"unknown scorer {kind!r} in {text!r}; scorers: {', '.join(SCORER_KINDS)}",
                closest(kind, SCORER_KINDS),
            )
        ]
    field = rest.partition(":")[0]
    if field and field not in spec.state.fields:
        return [Problem(path, f"scorer {text!r}: {field!r} is not a state field", closest(field, spec.state.fields))]
    if not field and kind != "judge":
        return [Problem(path, f"scorer {text!r} needs a state field: {kind}:FIELD")]
    return []


def _check_gates(spec: FlowSpec) -> list[Problem]:
    problems: list[Problem] = []
    names = [*GATE_METRICS, scorer_metric("judge", None)]
    names += [scorer_metric(kind, field) for kind in SCORER_KINDS for field in spec.state.fields]
    for k, gate in enumerate(spec.config.gates):
        path: KeyPath = ("config", "gates", k)
        if gate.metric not in names:
            problems.append(
                Problem(
                    (*path, "metric"),
                    f"unknown gate metric {gate.metric!r}; metrics: {', '.join(GATE_METRICS)}, "
                    "or a scorer's name such as exact_<field>",
                    closest(gate.metric, names),
                )
            )
        if gate.min is None and gate.max is None:
            problems.append(Problem(path, f"gate on {gate.metric!r} needs min, max or both"))
        elif gate.min is not None and gate.max is not None and gate.min > gate.max:
            problems.append(Problem(path, f"gate on {gate.metric!r}: min {gate.min:g} is above max {gate.max:g}"))
    return problems


def _check_tools(spec: FlowSpec, tools: Collection[str]) -> list[Problem]:
    problems: list[Problem] = []
    for index, node in enumerate(spec.nodes):
        for k, entry in enumerate(node.tools):
            name = entry if isinstance(entry, str) else str(entry.get("name", ""))
            path: KeyPath = (
                ("nodes", index, "tools", k) if isinstance(entry, str) else ("nodes", index, "tools", k, "name")
            )
            if name not in tools:
                problems.append(
                    Problem(
                        path, f"unknown tool {name!r}; valid tools: {', '.join(sorted(tools))}", closest(name, tools)
                    )
                )
    return problems


def _check_token(value: str, what: str, path: KeyPath) -> list[Problem]:
    if _TOKEN.fullmatch(value):
        return []
    if not value:
        return [Problem(path, f"{what} must not be empty; use letters, digits, '_' and '-'")]
    bad = next(char for char in value if not _TOKEN.fullmatch(char))
    return [
        Problem(
            path,
            f"{what} {value!r} cannot be used in NATS subjects: {bad!r} is not allowed; "
            "use only letters, digits, '_' and '-'",
        )
    ]


def _check_state(spec: FlowSpec, problems: list[Problem]) -> dict[str, TypeRef]:
    types: dict[str, TypeRef] = {}
    for name, field in spec.state.fields.items():
        base: KeyPath = ("state", "fields", name)
        try:
            ref = parse_type(field.type, field.schema_)
        except TypeStringError as exc:
            path = (*base, "schema", *exc.path) if exc.in_schema else (*base, "type")
            problems.append(Problem(path, exc.message, exc.suggestion))
            types[name] = ANY
            continue
        types[name] = ref
        if field.has_default and field.default is not None:
            try:
                TypeAdapter(annotation(ref, f"{name}_default")).validate_python(field.default)
            except ValidationError as exc:
                reason = exc.errors(include_url=False)[0]["msg"]
                problems.append(
                    Problem(
                        (*base, "default"),
                        f"default {short_repr(field.default)} does not fit type {ref}: {reason}",
                    )
                )
    return types


def _check_node_ids(spec: FlowSpec, problems: list[Problem]) -> None:
    seen: dict[str, int] = {}
    for index, node in enumerate(spec.nodes):
        path: KeyPath = ("nodes", index, "id")
        if node.id in (START, END):
            problems.append(Problem(path, f"node id {node.id!r} is reserved (START and END mark the ends of a flow)"))
            continue
        problems += _check_token(node.id, "node id", path)
        if node.id in seen:
            problems.append(Problem(path, f"duplicate node id {node.id!r} (first used by nodes[{seen[node.id]}])"))
        else:
            seen[node.id] = index


def _check_outputs(
    spec: FlowSpec, index: int, node: NodeSpec, state_types: Mapping[str, TypeRef], problems: list[Problem]
) -> None:
    base: KeyPath = ("nodes", index)
    if not node.outputs:
        problems.append(
            Problem(
                (*base, "id"),
                f"node {node.id!r} has no outputs; its answer is not stored in the state",
                severity="warning",
            )
        )
    fields_list = ", ".join(spec.state.fields) or "none"
    for k, name in enumerate(node.outputs):
        if name not in spec.state.fields:
            problems.append(
                Problem(
                    (*base, "outputs", k),
                    f"output {name!r} is not a state field (state fields: {fields_list})",
                    closest(name, spec.state.fields),
                )
            )
        if name in node.outputs[:k]:
            problems.append(Problem((*base, "outputs", k), f"output {name!r} is listed twice"))
    schema = node.output_schema
    if schema is None:
        return
    spath: KeyPath = (*base, "output_schema")
    if schema.type.strip() != "object":
        try:
            parse_type(schema.type, schema.schema_)
        except TypeStringError as exc:
            problems.append(Problem((*spath, "type"), exc.message, exc.suggestion))
        problems.append(
            Problem(
                (*spath, "type"),
                f"a scalar output_schema (type: {schema.type}) needs exactly one output, got {len(node.outputs)}; "
                "use type: object with fields for several outputs",
            )
        )
        return
    declared: list[str] = []
    for j, field in enumerate(schema.fields):
        fpath: KeyPath = (*spath, "fields", j)
        if field.name in declared:
            problems.append(Problem((*fpath, "name"), f"output_schema field {field.name!r} is listed twice"))
        declared.append(field.name)
        if field.name not in node.outputs:
            problems.append(
                Problem(
                    (*fpath, "name"),
                    f"output_schema field {field.name!r} is not in outputs [{', '.join(node.outputs)}]",
                    closest(field.name, node.outputs),
                )
            )
        try:
            ref = parse_type(field.type, field.schema_)
        except TypeStringError as exc:
            sub = (*fpath, "schema", *exc.path) if exc.in_schema else (*fpath, "type")
            problems.append(Problem(sub, exc.message, exc.suggestion))
            continue
        if field.name in node.outputs and field.name in state_types:
            reducer = spec.state.fields[field.name].reducer
            reason = incompatibility(ref, output_slot(state_types[field.name], reducer))
            if reason:
                how = f", reducer {reducer}" if reducer else ""
                problems.append(
                    Problem(
                        (*fpath, "type"),
                        f"output {field.name!r} ({ref}) does not fit state field {field.name!r} "
                        f"({state_types[field.name]}{how}): {reason}",
                    )
                )
    if schema.fields:
        for k, name in enumerate(node.outputs):
            if name not in declared:
                problems.append(
                    Problem(
                        (*base, "outputs", k),
                        f"output {name!r} has no field in output_schema",
                        closest(name, declared),
                    )
                )


def _check_inputs(index: int, node: NodeSpec, scope: Scope, problems: list[Problem]) -> None:
    for local, target in node.inputs.items():
        path: KeyPath = ("nodes", index, "inputs", local)
        # Inputs may not refer to other inputs; they are resolved from the state and runtime names.
        outer = Scope(scope.state, runtime=scope.runtime)
        if is_template(target):
            scope.inputs[local] = _check_input_template(local, target, outer, path, problems)
            continue
        segments = target.split(".")
        explicit = segments[0] == "state" and len(segments) > 1
        if explicit:
            segments = segments[1:]
        if not all(segments):
            problems.append(
                Problem(path, f"input {local!r}: {target!r} is not a path like state.field.sub or a template {{x}}")
            )
            scope.inputs[local] = ANY
            continue
        resolved = outer.resolve(segments, explicit_state=explicit)
        if isinstance(resolved, Unresolved):
            problems.append(Problem(path, f"input {local!r}: {resolved.message}", resolved.suggestion))
            scope.inputs[local] = ANY
        else:
            scope.inputs[local] = resolved


def _check_input_template(local: str, target: str, scope: Scope, path: KeyPath, problems: list[Problem]) -> TypeRef:
    """The type of a template input: the placeholder's when it is the whole template, else str."""
    try:
        found = placeholders(target)
    except TemplateSyntaxError as exc:
        problems.append(Problem(path, f"input {local!r}: {exc.message}", offset=exc.offset))
        return ANY
    types: list[TypeRef] = []
    for placeholder in found:
        resolved = scope.resolve(placeholder.path, explicit_state=placeholder.explicit_state)
        if isinstance(resolved, Unresolved):
            message = f"input {local!r}: placeholder {{{placeholder.text}}}: {resolved.message}"
            problems.append(Problem(path, message, resolved.suggestion, offset=placeholder.offset))
            types.append(ANY)
        else:
            types.append(resolved)
    return types[0] if single_placeholder(target) else TypeRef("str")


def _check_prompt(index: int, node: NodeSpec, scope: Scope, problems: list[Problem]) -> None:
    path: KeyPath = ("nodes", index, "prompt")
    try:
        found = placeholders(node.prompt)
    except TemplateSyntaxError as exc:
        problems.append(Problem(path, exc.message, offset=exc.offset))
        return
    for placeholder in found:
        resolved = scope.resolve(placeholder.path, explicit_state=placeholder.explicit_state)
        if isinstance(resolved, Unresolved):
            message = f"placeholder {{{placeholder.text}}}: {resolved.message}"
            problems.append(Problem(path, message, resolved.suggestion, offset=placeholder.offset))
