"""State models and trigger inputs; output models, their JSON Schema and validation of LLM answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from configs import (
    FlowSpec,
    InputError,
    OutputError,
    initial_state,
    load_flow,
    load_flow_text,
    output_json_schema,
    output_model,
    python_type,
    state_model,
    types_compatible,
    validate_output,
)

SEEDS = Path("/work/shared/seed-configs")


@pytest.fixture(scope="module")
def nested() -> FlowSpec:
    return load_flow(SEEDS / "nested_state.yaml").spec


@pytest.fixture(scope="module")
def review() -> FlowSpec:
    return load_flow(SEEDS / "review_loop.yaml").spec


@pytest.fixture(scope="module")
def tools() -> FlowSpec:
    return load_flow(SEEDS / "tools_example.yaml").spec


def test_initial_state_applies_defaults_and_type_appropriate_empties() -> None:
    spec = load_flow_text("""\
schema_version: "1.0"
flow: {name: defaults}
state:
  fields:
    topic: {type: str, required: true}
    n: {type: int}
    x: {type: float}
    ok: {type: bool}
    tags: {type: "list[str]"}
    meta: {type: "dict[str, int]"}
    obj: {type: object, schema: {a: str}}
    given: {type: str, default: "hi"}
    nothing: {type: str, default: null}
nodes: [{id: a, prompt: "{topic}", outputs: [given]}]
edges: [{from: START, to: a}, {from: a, to: END}]
""").spec
    state = initial_state(spec, {"topic": "owls"})
    assert state == {
        "topic": "owls",
        "n": 0,
        "x": 0.0,
        "ok": False,
        "tags": [],
        "meta": {},
        "obj": None,
        "given": "hi",
        "nothing": None,
    }


def test_initial_state_validates_nested_objects_and_returns_json(nested: FlowSpec) -> None:
    profile = {"bio": "b", "personality_traits": ["x"], "recommended_topics": [], "engagement_score": "7"}
    state = initial_state(nested, {"name": "Ann", "interests": ["owls"], "profile": profile})
    assert state["profile"]["engagement_score"] == 7
    json.dumps(state)


def test_initial_state_reports_every_problem_at_once(nested: FlowSpec) -> None:
    with pytest.raises(InputError) as info:
        initial_state(nested, {"nam": "Ann", "interests": "owls"})
    problems = info.value.problems
    assert len(problems) == 3
    assert any("unknown input 'nam'; did you mean 'name'?" in p for p in problems)
    assert any("missing required input 'name' (str)" in p for p in problems)
    assert any("input 'interests' (list[str])" in p and "valid list" in p for p in problems)
    assert isinstance(info.value, ValueError)


def test_initial_state_reports_wrong_nested_types(nested: FlowSpec) -> None:
    bad = {"bio": "b", "personality_traits": ["x"], "recommended_topics": [], "engagement_score": "high"}
    with pytest.raises(InputError) as info:
        initial_state(nested, {"name": "Ann", "interests": [], "profile": bad})
    assert info.value.problems == [
        "input 'profile.engagement_score' (object): Input should be a valid integer, unable to parse string "
        "as an integer, got 'high'"
    ]


def test_state_model_is_cached_and_rejects_unknown_keys(review: FlowSpec) -> None:
    model = state_model(review)
    assert state_model(review) is model
    with pytest.raises(ValidationError):
        model.model_validate({"topic": "t", "bogus": 1})
    assert model.model_validate({"topic": "t"}).model_dump()["score"] == 0.0


def test_validate_output_accepts_nested_object_with_typed_lists(nested: FlowSpec) -> None:
    node = nested.node("generate_profile")
    raw = {
        "profile": {
            "bio": "Loves owls.",
            "personality_traits": ["curious"],
            "recommended_topics": ["birds", "night"],
            "engagement_score": 80,
            "extra": "dropped",
        }
    }
    out = validate_output(nested, node, raw)
    assert out == {
        "profile": {
            "bio": "Loves owls.",
            "personality_traits": ["curious"],
            "recommended_topics": ["birds", "night"],
            "engagement_score": 80,
        }
    }


def test_validate_output_wrong_type_names_field_and_expected_type(nested: FlowSpec) -> None:
    node = nested.node("generate_profile")
    raw = {"profile": {"bio": "b", "personality_traits": "curious", "recommended_topics": [], "engagement_score": 1}}
    with pytest.raises(OutputError) as info:
        validate_output(nested, node, raw)
    assert info.value.problems == [
        "profile.personality_traits (expected list[str]): Input should be a valid list, got 'curious'"
    ]
    message = str(info.value)
    assert message.startswith("Your answer does not match the required format:")
    assert '"profile" (object{bio: str' in message


def test_validate_output_reports_missing_outputs(review: FlowSpec) -> None:
    with pytest.raises(OutputError) as info:
        validate_output(review, review.node("revise"), {"draft": "d"})
    assert info.value.problems == ["approved: missing (expected bool)"]


def test_single_output_node_accepts_a_bare_value(tools: FlowSpec) -> None:
    node = tools.node("search_web")
    assert validate_output(tools, node, "three findings") == {"search_results": "three findings"}
    assert validate_output(tools, node, {"search_results": "x"}) == {"search_results": "x"}
    with pytest.raises(OutputError):
        validate_output(tools, node, 12)


def test_float_output_accepts_an_int(review: FlowSpec) -> None:
    assert validate_output(review, review.node("score"), {"score": 1}) == {"score": 1.0}


def test_output_json_schema_inlines_nested_objects(nested: FlowSpec) -> None:
    schema = output_json_schema(nested, nested.node("generate_profile"))
    text = json.dumps(schema)
    assert "$ref" not in text
    assert "$defs" not in text
    assert schema["required"] == ["profile"]
    assert schema["additionalProperties"] is False
    profile = schema["properties"]["profile"]
    assert profile["required"] == ["bio", "personality_traits", "recommended_topics", "engagement_score"]
    assert profile["properties"]["personality_traits"] == {"type": "array", "items": {"type": "string"}}


def test_output_model_is_cached_and_types_follow_state_without_output_schema() -> None:
    spec = load_flow_text("""\
schema_version: "1.0"
flow: {name: plain}
state:
  fields:
    n: {type: int, default: 0}
nodes: [{id: a, prompt: "x", outputs: [n]}]
edges: [{from: START, to: a}, {from: a, to: END}]
""").spec
    node = spec.node("a")
    assert output_model(spec, node) is output_model(spec, node)
    assert output_json_schema(spec, node)["properties"] == {"n": {"type": "integer"}}
    with pytest.raises(OutputError):
        validate_output(spec, node, {"n": "many"})


@pytest.mark.parametrize(
    ("type_str", "value", "expected"),
    [
        ("str", "x", "x"),
        ("int", "12", 12),
        ("float", 2, 2.0),
        ("list[int]", ["1", 2], [1, 2]),
        ("dict[str, list[bool]]", {"a": [True]}, {"a": [True]}),
        (" list[ dict[str,int] ] ", [{"a": 1}], [{"a": 1}]),
        ("list", [1, "a"], [1, "a"]),
    ],
)
def test_python_type_builds_usable_annotations(type_str: str, value: Any, expected: Any) -> None:
    assert TypeAdapter(python_type(type_str)).validate_python(value) == expected


def test_python_type_rejects_non_numeric_strings_for_int() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(python_type("int")).validate_python("12abc")


def test_python_type_builds_object_models_from_schema() -> None:
    model = python_type("object", {"a": "int", "inner": {"b": "list[str]"}}, name="Thing")
    value = TypeAdapter(model).validate_python({"a": 1, "inner": {"b": ["x"]}, "zzz": 0})
    assert value.model_dump() == {"a": 1, "inner": {"b": ["x"]}}


@pytest.mark.parametrize("bad", ["lst", "list[", "dict[int, str]", "list[str]]", "", "tuple[int]"])
def test_bad_type_strings_are_value_errors_listing_valid_forms(bad: str) -> None:
    with pytest.raises(ValueError, match=r"valid types: str, int"):
        python_type(bad)


def test_types_compatible_rules() -> None:
    assert types_compatible("int", "float")
    assert not types_compatible("float", "int")
    assert types_compatible("list[int]", "list[float]")
    assert not types_compatible("list[str]", "list[int]")
    assert types_compatible("list[str]", "list")
    assert types_compatible("object", "object", produced_schema={"a": "int"}, expected_schema={"a": "float"})
    assert not types_compatible("object", "object", produced_schema={"a": "str"}, expected_schema={"a": "int"})
    assert not types_compatible("object", "object", produced_schema={"a": "int"}, expected_schema={"b": "int"})


def test_state_fields_named_like_model_attributes_keep_their_names() -> None:
    spec = load_flow_text("""\
schema_version: "1.0"
flow: {name: odd}
state:
  fields:
    json: {type: str, required: true}
    model_name: {type: str, default: "m"}
    class: {type: int, default: 1}
nodes: [{id: a, prompt: "{json} {state.class}", outputs: [json]}]
edges: [{from: START, to: a}, {from: a, to: END}]
""").spec
    assert initial_state(spec, {"json": "j", "class": "2"}) == {"json": "j", "model_name": "m", "class": 2}
    assert validate_output(spec, spec.node("a"), "k") == {"json": "k"}


def test_initial_state_rejects_non_mapping_inputs(review: FlowSpec) -> None:
    with pytest.raises(InputError, match="inputs must be a mapping"):
        initial_state(review, ["topic"])  # type: ignore[arg-type]
