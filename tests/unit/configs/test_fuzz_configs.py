"""Fuzzing the YAML language: loader, expressions, templates and trigger inputs fail only with the project's errors.

Every input hypothesis makes either succeeds or raises the documented error of its function (ConfigError,
ExprError / ExprEvalError, TemplateSyntaxError / TemplateError, InputError), each example within a generous
deadline. Derandomized and without an example database, so the suite is deterministic; the example counts
are kept small (the whole module runs in a few seconds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs import (
    ConfigError,
    ExprError,
    ExprEvalError,
    FlowSpec,
    InputError,
    LoadedFlow,
    TemplateError,
    TemplateSyntaxError,
    initial_state,
    load_flow_text,
    parse_expr,
    placeholders,
    render,
)
from tests.conftest import SEEDS

FUZZ = settings(
    max_examples=60,
    deadline=2_000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
T = TypeVar("T")
SEED_TEXTS = sorted(path.read_text() for path in SEEDS.glob("*.yaml"))

# --- values ---------------------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)

# --- flow files -----------------------------------------------------------------------------------------------

YAML_TOKENS = [
    *list(":-[]{},&*!|>'\"#%@`?\\ \n\n  \t"),
    *["a", "x", "0", "1.5", "-1", "true", "null", "~", ".nan", ".inf", "0x1F", "1e400", "2001-12-14"],
    *["schema_version", "flow", "name", "state", "fields", "type", "default", "required", "schema"],
    *["nodes", "id", "prompt", "outputs", "edges", "from", "to", "routes", "when", "loop", "parallel", "START"],
    *["END", "foreach", "config", "llm", "model", "retry", "on", "<<", "&a", "*a", "&b", "*b", "!!str", "!!int"],
    *["!!binary", "!!set", "!!omap", "!!python/object:os.system", "!!timestamp", "---", "...", "{state.x}"],
    *["list[str]", "dict[str, float]", "object", "state.x > 1", "len(", "'", ": ", "- ", "\n  - ", "\n    "],
]
yaml_soup = st.lists(st.sampled_from(YAML_TOKENS), max_size=80).map("".join)

KEYS = ["schema_version", "flow", "name", "state", "fields", "type", "default", "nodes", "id", "prompt"]
KEYS += ["outputs", "edges", "from", "to", "routes", "when", "config", "llm", "loop", "max", "parallel", "x"]
flow_like = st.recursive(
    st.one_of(scalars, st.sampled_from(["START", "END", "str", "float", "list[int]", "{x}", "state.x > 0"])),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


@st.composite
def mutated_seeds(draw: st.DrawFn) -> str:
    """A seed flow file with a few tokens inserted, deleted or replaced."""
    text = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        cut = draw(st.integers(min_value=0, max_value=20))
        text = text[:at] + draw(st.sampled_from(YAML_TOKENS)) + text[at + cut :]
    return text


def attempt(fn: Callable[..., T], *args: Any, expected: type[Exception]) -> tuple[T | None, Exception | None]:
    """Call ``fn``: its result, or the ``expected`` error it raised (any other exception fails the test)."""
    try:
        return fn(*args), None
    except expected as exc:
        return None, exc


def _load(text: str) -> None:
    loaded, error = attempt(load_flow_text, text, "fuzz.yaml", expected=ConfigError)
    if error is None:
        assert isinstance(loaded, LoadedFlow)
        return
    assert isinstance(error, ConfigError)
    assert error.issues, "a ConfigError always carries its issues"
    assert all(issue.line >= 1 and issue.column >= 1 for issue in error.issues)


@FUZZ
@given(st.text(max_size=300))
def test_the_loader_takes_any_text(text: str) -> None:
    _load(text)


@FUZZ
@given(yaml_soup)
def test_the_loader_takes_any_yaml_token_soup(text: str) -> None:
    _load(text)


@FUZZ
@given(mutated_seeds())
def test_the_loader_takes_mutated_seed_files(text: str) -> None:
    _load(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), flow_like, max_size=6))
def test_the_loader_takes_any_document_shaped_like_a_flow(document: dict[str, Any]) -> None:
    _load(yaml.safe_dump(document, allow_unicode=True))


TYPE_TOKENS = ["list", "dict", "[", "]", "str", "int", "float", "bool", "object", ",", " ", "str, ", "Any", "{"]


@st.composite
def flows_with_fuzzed_pieces(draw: st.DrawFn) -> str:
    """The review_loop seed with fuzz where users write the language: types, prompts, conditions, targets."""
    text = (SEEDS / "review_loop.yaml").read_text()
    pieces = {
        '"list[str]", default: []}': json_dump(draw(st.lists(st.sampled_from(TYPE_TOKENS), max_size=12).map("".join))),
        '"Score this draft from 0 to 1: {state.draft}"': json_dump(draw(template_soup)),
        '"state.score >= 0.8"': json_dump(draw(expr_soup)),
        "to: revise": f"to: {draw(st.sampled_from(['revise', 'END', 'START', 'nowhere', '[revise, publish]', '']))}",
        "max_iterations: 3": f"max_iterations: {draw(st.sampled_from(['0', '-1', '3.5', '1e9', 'x', 'null']))}",
    }
    for old, new in pieces.items():
        if draw(st.booleans()):
            text = text.replace(old, new if not old.endswith("default: []}") else f"{new}, default: []}}", 1)
    return text


def json_dump(text: str) -> str:
    """A YAML double-quoted scalar holding ``text`` exactly (JSON strings are YAML)."""
    return json.dumps(text)


@FUZZ
@given(flows_with_fuzzed_pieces())
def test_the_validator_takes_fuzz_in_types_templates_conditions_and_targets(text: str) -> None:
    _load(text)


# --- expressions ----------------------------------------------------------------------------------------------

EXPR_TOKENS = [
    *["state", ".", "x", "y", "items", "item", "index", "len", "(", ")", "[", "]", ",", "0", "1", "-1", "2.5"],
    *["'a'", '"b"', "true", "null", "None", "and", "or", "not", "in", "is", "if", "else", "lambda", "__class__"],
    *["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "=", "&&", "||", "!", "~"],
    *[".lower()", ".startswith(", ".endswith(", ".upper()", " ", "\n", "\t", "1e308", "10**10**10", "{", "}"],
    *[":=", "f'{x}'", "[x for x in y]", "*", "@", "`", "\\", "\0", "é", "0x", "1_000", "9" * 30],
]
expr_soup = st.lists(st.sampled_from(EXPR_TOKENS), max_size=40).map("".join)
states = st.dictionaries(st.sampled_from(["x", "y", "items", "s", "n"]), json_values, max_size=5)


def _expression(text: str, state: dict[str, Any], item: Any, index: int | None) -> None:
    expr, error = attempt(parse_expr, text, expected=ExprError)
    if expr is None:
        assert isinstance(error, ExprError)
        assert error.column >= 1
        return
    attempt(expr.evaluate, state, item, index, expected=ExprEvalError)


@FUZZ
@given(st.one_of(st.text(max_size=200), expr_soup), states, json_values, st.none() | st.integers(0, 5))
def test_expressions_parse_and_evaluate_or_fail_with_expression_errors(
    text: str, state: dict[str, Any], item: Any, index: int | None
) -> None:
    _expression(text, state, item, index)


@FUZZ
@given(st.integers(min_value=1, max_value=2_500), st.sampled_from(["(", "-", "not ", "[", "x.", "+1", "state."]))
def test_deeply_nested_expressions_fail_cleanly(depth: int, token: str) -> None:
    _expression(token * depth + "x", {"x": 1}, None, None)


# --- templates ------------------------------------------------------------------------------------------------

TEMPLATE_TOKENS = ["{", "}", "{{", "}}", "state", ".", "x", "y", "0", "item", "index", "memory", ":", "!r", " "]
TEMPLATE_TOKENS += ["{state.x}", "{x.y}", "{item}", "{x:>3}", "{x!r}", "{state}", "{ x }", "{0}", "é", "\n", "_"]
template_soup = st.lists(st.sampled_from(TEMPLATE_TOKENS), max_size=40).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=200), template_soup), states, st.none() | states)
def test_templates_render_or_fail_with_template_errors(
    template: str, state: dict[str, Any], extra: dict[str, Any] | None
) -> None:
    found, error = attempt(placeholders, template, expected=TemplateSyntaxError)
    if found is None:
        assert isinstance(error, TemplateSyntaxError)
        assert 0 <= error.offset <= len(template)
        return
    assert all(0 <= p.offset < len(template) for p in found)
    rendered, _ = attempt(render, template, state, extra, expected=TemplateError)
    assert rendered is None or isinstance(rendered, str)


# --- trigger inputs -------------------------------------------------------------------------------------------

INPUT_FLOW = """\
schema_version: "1.0"
flow: {name: fuzz}
state:
  fields:
    topic: {type: str, required: true}
    n: {type: int, default: 3}
    score: {type: float}
    ok: {type: bool}
    tags: {type: "list[str]"}
    weights: {type: "dict[str, float]"}
    blob: {type: dict}
    rows: {type: list}
    profile:
      type: object
      schema: {name: str, age: int, scores: "list[float]", nested: {type: object, schema: {deep: float}}}
nodes:
  - {id: a, prompt: 'about {topic}', outputs: [topic]}
edges:
  - {from: START, to: a}
  - {from: a, to: END}
"""
SPEC: FlowSpec = load_flow_text(INPUT_FLOW, "fuzz.yaml").spec
FIELDS = [*SPEC.state.fields, "unknown", "Topic", ""]


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


@FUZZ
@given(st.one_of(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8), json_values))
def test_trigger_inputs_give_a_json_state_or_an_input_error(inputs: Any) -> None:
    state, error = attempt(initial_state, SPEC, inputs, expected=InputError)
    if state is None:
        assert isinstance(error, InputError)
        assert error.problems
        return
    assert set(state) == set(SPEC.state.fields)
    assert _finite(state), "no NaN or Infinity gets into a state"
