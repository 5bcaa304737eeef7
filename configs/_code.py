"""Checks of code nodes (`code:` + `sandbox:`) and of seed keys this platform parses but does not use.

Node code is compiled with RestrictedPython's policy here already, so a file whose code the sandbox
would refuse fails validation at the line of the code, not at run time.
"""

from __future__ import annotations

import re

from RestrictedPython.compile import compile_restricted_exec

from configs._issues import closest
from configs._locs import KeyPath, Problem
from configs._schema import FlowSpec, NodeSpec, SandboxSpec

_LINE = re.compile(r"^Line (\d+): ")
# Tools that run on the node's sandbox (its `sandbox:` block sets their limits).
SANDBOX_TOOLS = ("python_exec",)
NODE_KINDS = ("llm", "agent", "code")


def effective_sandbox(spec: FlowSpec, node: NodeSpec) -> SandboxSpec:
    """The sandbox block a node runs with: its own, else `config.sandbox`, else the defaults."""
    return node.sandbox or spec.config.sandbox or SandboxSpec()


def check_code(spec: FlowSpec, index: int, node: NodeSpec) -> list[Problem]:
    """Problems of one node's `code:`/`sandbox:` (and of a `kind:` that says otherwise)."""
    base: KeyPath = ("nodes", index)
    problems: list[Problem] = []
    kind = (node.kind or "").strip()
    if kind and kind not in NODE_KINDS:
        problems.append(
            Problem(
                (*base, "kind"),
                f"kind {kind!r} is not used: a node's kind follows from code: (code) and tools: (agent); "
                f"kinds: {', '.join(NODE_KINDS)}",
                severity="warning",
            )
        )
    elif kind == "code" and not node.is_code:
        problems.append(Problem((*base, "kind"), "a kind: code node needs code: (the Python it runs)"))
    uses_tool = any((t if isinstance(t, str) else t.get("name")) in SANDBOX_TOOLS for t in node.tools)
    if not node.is_code:
        if node.sandbox is not None and not uses_tool:
            problems.append(
                Problem(
                    (*base, "sandbox"),
                    "sandbox: applies to code nodes (code:) and the python_exec tool; this node has neither",
                    severity="warning",
                )
            )
        return problems
    assert node.code is not None
    if not node.code.strip():
        problems.append(Problem((*base, "code"), "code: is empty; write Python that sets result"))
    if node.prompt.strip():
        problems.append(Problem((*base, "prompt"), "a code node asks no model: its prompt is ignored", None, "warning"))
    if node.tools:
        problems.append(Problem((*base, "tools"), "a code node calls no tools: its tools are ignored", None, "warning"))
    sandbox = effective_sandbox(spec, node)
    where: KeyPath = (*base, "sandbox", "enabled") if node.sandbox is not None else (*base, "code")
    if not sandbox.enabled:
        problems.append(
            Problem(
                where,
                f"node {node.id!r} runs its code without any sandbox (enabled: false): run and up refuse it "
                "unless the operator passes --allow-unsandboxed",
                severity="warning",
            )
        )
        return problems
    problems += _policy_problems((*base, "code"), node.code)
    return problems


def _policy_problems(path: KeyPath, code: str) -> list[Problem]:
    result = compile_restricted_exec(code, filename="<node>")
    found: list[Problem] = []
    starts = [0]
    for line in code.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    for error in result.errors:
        match = _LINE.match(error)
        offset = None
        if match and 0 < int(match.group(1)) <= len(starts):
            offset = starts[int(match.group(1)) - 1]
        found.append(Problem(path, f"the sandbox refuses this code: {error}", offset=offset))
    return found


TOOL_ENTRY_KEYS = ("name", "on_error", "actor")


def check_ignored(spec: FlowSpec) -> list[Problem]:
    """Warnings for seed keys that are parsed but have no effect here, each at its location."""
    problems: list[Problem] = []
    for index, node in enumerate(spec.nodes):
        for k, entry in enumerate(node.tools):
            if not isinstance(entry, dict):
                continue
            for key in entry:
                if key not in TOOL_ENTRY_KEYS:
                    problems.append(
                        Problem(
                            ("nodes", index, "tools", k, key),
                            f"tool key {key!r} is ignored (used: {', '.join(TOOL_ENTRY_KEYS)})",
                            closest(str(key), TOOL_ENTRY_KEYS),
                            "warning",
                        )
                    )
    config = spec.config
    if config.logging is not None:
        problems.append(
            Problem(
                ("config", "logging"),
                "config.logging is ignored: logs are set by the operator (--log-level, --log-format)",
                severity="warning",
            )
        )
    storage = config.storage
    if storage is not None and not storage.url and (storage.backend != "sqlite" or not storage.path):
        problems.append(
            Problem(
                ("config", "storage"),
                f"config.storage backend {storage.backend!r} without url: is ignored (the default store is used); "
                "give path: for sqlite or url: (postgresql://..., redis://...)",
                severity="warning",
            )
        )
    mlflow = config.observability.mlflow if config.observability else None
    if mlflow is not None and not mlflow.enabled and (mlflow.tracking_uri or mlflow.experiment_name):
        problems.append(
            Problem(
                ("config", "observability", "mlflow", "enabled"),
                "mlflow is not enabled: tracking_uri and experiment_name take effect only with enabled: true",
                severity="warning",
            )
        )
    if spec.triggers is not None:
        problems.append(
            Problem(
                ("triggers",),
                "triggers: is not served by this version and is ignored; start runs with ca-actors trigger, "
                "a NATS request to ca.trigger.<flow>, or a gateway",
                severity="warning",
            )
        )
    return problems
