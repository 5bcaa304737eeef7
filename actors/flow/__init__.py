"""What a flow means, shared by both engines.

Plans, control-flow decisions, node execution, the LLM and memory ports, and loading flow files.
"""

from actors.flow.code_exec import UnsandboxedRefused, refuse_unsandboxed, unsandboxed_nodes
from actors.flow.llm import ChatMessage, LLMClient, LLMErrorKind, LLMReply, LLMRequest, ToolCall, Usage
from actors.flow.loading import FlowSet, PromptFetcher, flow_files, flow_names, is_mock_script, load_flows, yaml_files
from actors.flow.logic import Counters, FlowError
from actors.flow.node_exec import (
    BudgetExceeded,
    LLMUnavailable,
    NodeFailed,
    NodeOutcome,
    NodePorts,
    StepContext,
    choose_model,
    default_tool_context,
    run_llm_node,
    tools_pinned_to,
)
from actors.flow.plan import Plan, PlanStore, compile_plan

__all__ = [
    "BudgetExceeded",
    "ChatMessage",
    "Counters",
    "FlowError",
    "FlowSet",
    "LLMClient",
    "LLMErrorKind",
    "LLMReply",
    "LLMRequest",
    "LLMUnavailable",
    "NodeFailed",
    "NodeOutcome",
    "NodePorts",
    "Plan",
    "PlanStore",
    "PromptFetcher",
    "StepContext",
    "ToolCall",
    "UnsandboxedRefused",
    "Usage",
    "choose_model",
    "compile_plan",
    "default_tool_context",
    "flow_files",
    "flow_names",
    "is_mock_script",
    "load_flows",
    "refuse_unsandboxed",
    "run_llm_node",
    "tools_pinned_to",
    "unsandboxed_nodes",
    "yaml_files",
]
