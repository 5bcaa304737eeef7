"""The seed-format files validate unchanged, and the exported JSON Schema describes the language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from configs import (
    FlowSpec,
    flow_json_schema,
    load_flow,
    output_json_schema,
    output_model,
    types_compatible,
)
from tests.conftest import SEEDS

SEED_FILES = sorted(SEEDS.glob("*.yaml"))


def test_there_are_seed_files_to_check() -> None:
    assert len(SEED_FILES) >= 6


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name)
def test_every_seed_file_validates_without_errors_or_warnings(path: Path) -> None:
    loaded = load_flow(path)
    for warning in loaded.warnings:
        print(warning)
    assert loaded.warnings == []
    assert loaded.file == str(path)
    assert loaded.source == path.read_text(encoding="utf-8")
    assert isinstance(loaded.spec, FlowSpec)
    assert loaded.spec.schema_version == "1.0"


def test_scalar_output_schema_is_normalised_to_one_field_object() -> None:
    spec = load_flow(SEEDS / "tools_example.yaml").spec
    node = spec.node("search_web")
    assert node.output_schema is not None
    assert node.output_schema.type == "object"
    assert [(f.name, f.type) for f in node.output_schema.fields] == [("search_results", "str")]
    assert output_json_schema(spec, node)["properties"] == {"search_results": {"type": "string"}}


def test_tools_are_kept_as_strings_and_mappings() -> None:
    spec = load_flow(SEEDS / "tools_example.yaml").spec
    assert spec.node("search_web").tools == [{"name": "web_search", "on_error": "fail"}]
    assert spec.node("save_to_file").tools == ["file_read", "file_write", "file_glob"]


def test_nested_profile_output_type_matches_the_state_field() -> None:
    spec = load_flow(SEEDS / "nested_state.yaml").spec
    state_field = spec.state.fields["profile"]
    node = spec.node("generate_profile")
    assert node.output_schema is not None
    out_field = node.output_schema.fields[0]
    assert types_compatible(
        out_field.type, state_field.type, produced_schema=out_field.schema_, expected_schema=state_field.schema_
    )
    assert "default" in state_field.model_fields_set
    assert state_field.default is None
    model = output_model(spec, node)
    assert list(model.model_fields) == ["profile"]


def test_review_loop_edges_expose_kinds_and_targets() -> None:
    spec = load_flow(SEEDS / "review_loop.yaml").spec
    kinds = [edge.kind for edge in spec.edges]
    assert kinds == ["to", "parallel", "to", "to", "routes", "loop", "to"]
    assert spec.edges[4].targets() == ["publish", "revise"]
    assert spec.edges[5].targets() == ["revise", "publish"]
    assert spec.edges[1].parallel is not None
    assert spec.edges[1].parallel.collect_field == "notes"


def test_runtime_config_reads_llm_and_execution() -> None:
    spec = load_flow(SEEDS / "article_writer.yaml").spec
    assert spec.config.llm is not None
    assert spec.config.llm.model == "gemini-2.5-flash-lite"
    assert spec.config.llm.temperature == pytest.approx(0.7)
    assert spec.config.execution.timeout == pytest.approx(120.0)
    assert spec.config.execution.max_retries == 3


def test_flow_json_schema_is_serialisable_and_describes_nodes_and_edges() -> None:
    schema = flow_json_schema()
    text = json.dumps(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"]
    assert {"nodes", "edges", "schema_version", "flow"} <= set(schema["properties"])
    assert "from" in text  # edges use the YAML key, not the Python field name
    assert "from_" not in text
