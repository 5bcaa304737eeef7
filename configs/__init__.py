"""Flow files: the YAML language, its models, validation, state/output types and prompt templates."""

from configs._issues import ConfigError, ConfigIssue, InputError, OutputError
from configs._jsonschema import flow_json_schema
from configs._loader import LoadedFlow, load_flow, load_flow_text
from configs._outputs import output_json_schema, output_model, validate_output
from configs._schema import (
    END,
    START,
    ConditionSpec,
    EdgeSpec,
    ExecutionSpec,
    FieldSpec,
    FlowMeta,
    FlowSpec,
    LLMSpec,
    LoopSpec,
    NodeSpec,
    OutputField,
    OutputSchema,
    ParallelSpec,
    RouteSpec,
    RuntimeConfig,
    StateSpec,
)
from configs._templates import (
    Placeholder,
    TemplateError,
    TemplateSyntaxError,
    placeholders,
    render,
    resolve_path,
)
from configs._types import initial_state, python_type, state_model, types_compatible
from configs.errors import ActorError, BusError, CaActorsError, LLMError
from configs.settings import Settings

__all__ = [
    "END",
    "START",
    "ActorError",
    "BusError",
    "CaActorsError",
    "ConditionSpec",
    "ConfigError",
    "ConfigIssue",
    "EdgeSpec",
    "ExecutionSpec",
    "FieldSpec",
    "FlowMeta",
    "FlowSpec",
    "InputError",
    "LLMError",
    "LLMSpec",
    "LoadedFlow",
    "LoopSpec",
    "NodeSpec",
    "OutputError",
    "OutputField",
    "OutputSchema",
    "ParallelSpec",
    "Placeholder",
    "RouteSpec",
    "RuntimeConfig",
    "Settings",
    "StateSpec",
    "TemplateError",
    "TemplateSyntaxError",
    "flow_json_schema",
    "initial_state",
    "load_flow",
    "load_flow_text",
    "output_json_schema",
    "output_model",
    "placeholders",
    "python_type",
    "render",
    "resolve_path",
    "state_model",
    "types_compatible",
    "validate_output",
]
