"""The JSON Schema of the YAML language, for editors (`ca-actors schema`)."""

from __future__ import annotations

from typing import Any

from configs._schema import FlowSpec

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a flow file, derived from the pydantic models.

    Returns:
        A JSON-serialisable schema with `$schema` and `title`.
    """
    schema = FlowSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": DRAFT,
        "title": "ca-actors flow",
        "description": "A YAML multi-agent LLM workflow (schema_version 1.0).",
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }
