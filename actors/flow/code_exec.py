"""Code nodes (`code:`): run the node's Python in the sandbox, validate its `result` like an LLM answer.

The code sees `inputs` (the node's resolved ``inputs:``, plus the runtime names ``item``/``index``/
``error`` where they exist), `memory` (what it remembers, as text) and `state` (a copy of the run's
state), all plain JSON data; it sets `result`. Shared by both engines through `run_llm_node`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.sandbox import Limits, SandboxPool, SandboxResult, limits_for, run_in_docker
from configs import FlowSpec, NodeSpec, OutputError, SandboxSpec, effective_sandbox, input_value, validate_output
from configs.errors import ActorError


class UnsandboxedRefused(ActorError):
    """A node asks to run its code without a sandbox and the operator did not allow it."""


def unsandboxed_nodes(spec: FlowSpec) -> list[str]:
    """The code nodes of a flow that ask to run without any sandbox (``sandbox.enabled: false``)."""
    return [node.id for node in spec.nodes if node.is_code and not effective_sandbox(spec, node).enabled]


def refuse_unsandboxed(specs: list[FlowSpec], allowed: bool) -> list[str]:
    """One line per flow that runs code without a sandbox, unless the operator allowed it."""
    if allowed:
        return []
    return [
        f"flow '{spec.flow.name}': node(s) {', '.join(nodes)} run code without a sandbox (sandbox.enabled: false); "
        "refused: pass --allow-unsandboxed to allow it"
        for spec in specs
        if (nodes := unsandboxed_nodes(spec))
    ]


def sandbox_limits(block: SandboxSpec) -> Limits:
    """The limits a sandbox block asks for: its preset (default `low`) and its overrides."""
    return limits_for(block.preset, network=block.network, enabled=block.enabled, **block.overrides())


def code_inputs(node: NodeSpec, state: Mapping[str, Any], runtime: Mapping[str, Any]) -> dict[str, Any]:
    """What `inputs` holds for the code: each ``inputs:`` entry resolved, plus the runtime names."""
    found = {k: v for k, v in runtime.items() if k != "memory"}
    found.update({name: input_value(target, state, runtime) for name, target in node.inputs.items()})
    return found


async def execute_code(
    code: str,
    data: Mapping[str, Any],
    block: SandboxSpec,
    *,
    pool: SandboxPool | None,
    allow_unsandboxed: bool = False,
    image: str | None = None,
    what: str = "code",
) -> SandboxResult:
    """Run `code` under `block` on `pool` (a pool of one for this call when None) or in a container.

    Raises:
        UnsandboxedRefused: `enabled: false` without the operator's ``--allow-unsandboxed``.
        SandboxError: the sandbox could not run the code at all (e.g. no container engine).
    """
    if not block.enabled and not allow_unsandboxed:
        raise UnsandboxedRefused(
            f"{what} asks to run without a sandbox (sandbox.enabled: false); the operator must allow it "
            "with --allow-unsandboxed"
        )
    limits = sandbox_limits(block)
    if block.mode == "docker":
        return await run_in_docker(code, data, limits, image=block.image or image)
    if pool is not None:
        return await pool.run(code, data, limits)
    async with SandboxPool(size=1) as own:
        return await own.run(code, data, limits)


async def code_outputs(
    spec: FlowSpec,
    node: NodeSpec,
    state: Mapping[str, Any],
    runtime: Mapping[str, Any],
    *,
    pool: SandboxPool | None,
    allow_unsandboxed: bool = False,
    image: str | None = None,
) -> dict[str, Any]:
    """Run a code node and return its outputs (validated against its `output_schema`).

    Raises:
        ValueError: the code did not give a valid result (the message names the limit or the problem).
        UnsandboxedRefused, SandboxError: see `execute_code`.
    """
    assert node.code is not None
    data = {
        "inputs": code_inputs(node, state, runtime),
        "memory": runtime.get("memory", ""),
        "state": dict(state),
    }
    block = effective_sandbox(spec, node)
    done = await execute_code(
        node.code,
        data,
        block,
        pool=pool,
        allow_unsandboxed=allow_unsandboxed,
        image=image,
        what=f"node '{node.id}'",
    )
    if not done.ok:
        raise ValueError(done.message)
    try:
        return validate_output(spec, node, done.result)
    except OutputError as exc:
        raise ValueError(f"its result does not fit the output_schema: {exc}") from exc
