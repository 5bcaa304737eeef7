"""What fuzzing found: each input raised a bare Python exception (or crashed) instead of the project's error."""

from __future__ import annotations

from typing import Any

import pytest

from configs import ConfigError, FlowSpec, OutputError, TemplateError, load_flow_text, render, validate_output
from configs._typeref import MAX_TYPE_DEPTH

FLOW = """\
schema_version: "1.0"
flow: {name: demo}
state:
  fields:
    rows: {type: TYPE}
nodes:
  - {id: a, prompt: 'x {rows}', outputs: [rows]}
edges:
  - {from: START, to: a}
  - {from: a, to: END}
"""


def _nested(depth: int, leaf: Any = None) -> Any:
    value: Any = [] if leaf is None else [leaf]
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def spec() -> FlowSpec:
    return load_flow_text(FLOW.replace("TYPE", "list"), "flow.yaml").spec


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("!!set\n  - ", "expected a mapping node, but found sequence", (1, 1)),  # was TypeError
        ("!!timestamp", "'' cannot be read as !!timestamp (AttributeError)", (1, 1)),
        ("!!int", "'' cannot be read as !!int (IndexError)", (1, 1)),
        ("a: !!int 0x", "'0x' cannot be read as !!int (ValueError)", (1, 4)),
        ("a: !!bool maybe", "'maybe' cannot be read as !!bool (KeyError)", (1, 4)),
        ("a: !!float abc", "'abc' cannot be read as !!float (ValueError)", (1, 4)),
    ],
)
def test_an_explicit_yaml_tag_that_does_not_fit_its_value_is_a_located_config_error(
    text: str, message: str, where: tuple[int, int]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_flow_text(text, "flow.yaml")
    (issue,) = info.value.issues
    assert issue.message == f"invalid YAML: {message}"
    assert (issue.line, issue.column) == where


def test_a_type_string_nested_a_thousand_deep_is_a_config_error_not_a_recursion_error() -> None:
    deep = "list[" * 1_000 + "str" + "]" * 1_000
    with pytest.raises(ConfigError, match=rf"nested more than {MAX_TYPE_DEPTH} levels deep") as info:
        load_flow_text(FLOW.replace("TYPE", f'"{deep}"'), "flow.yaml")
    assert len(str(info.value)) < 1_000  # the type is shortened in the message
    limit = "list[" * MAX_TYPE_DEPTH + "str" + "]" * MAX_TYPE_DEPTH
    assert load_flow_text(FLOW.replace("TYPE", f'"{limit}"'), "flow.yaml").spec.state.fields["rows"].type == limit


def test_an_llm_answer_nested_past_the_limit_is_an_output_error(spec: FlowSpec) -> None:
    with pytest.raises(OutputError, match=r"rows.*nested more than 64 levels deep"):  # was pydantic's ValueError
        validate_output(spec, spec.nodes[0], {"rows": _nested(300)})


def test_nan_in_an_untyped_llm_answer_is_an_output_error_not_a_silent_null(spec: FlowSpec) -> None:
    with pytest.raises(OutputError, match=r"rows\[1\]: NaN is not a finite number"):
        validate_output(spec, spec.nodes[0], {"rows": [1, float("nan")]})


@pytest.mark.parametrize("case", ["deep", "circular"])
def test_a_value_without_a_json_text_is_a_template_error(case: str) -> None:
    value: Any = _nested(3_000)
    if case == "circular":
        value = {}
        value["self"] = value
    with pytest.raises(TemplateError, match=r"template placeholder \{rows\} cannot be resolved: its value cannot"):
        render("{rows}", {"rows": value})
