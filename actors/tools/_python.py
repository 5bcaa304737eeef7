"""The ``python_exec`` tool: an agent runs a snippet of Python in the sandbox (the code nodes' sandbox).

The snippet gets ``inputs`` (the tool's ``inputs`` argument) and sets ``result``; what it prints comes
back too. It runs under RestrictedPython in an isolated worker process (`actors.sandbox`), with the
node's ``sandbox:`` limits (else the `low` preset). A refused or stopped snippet is a tool error that
names the limit, so the model can fix its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.sandbox import SandboxPool, limits_for

from ._base import FunctionTool, ToolContext, ToolError, object_schema

MAX_CODE_CHARS = 20_000


async def _python_exec(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    code = str(args["code"])
    if len(code) > MAX_CODE_CHARS:
        raise ToolError(f"code is over {MAX_CODE_CHARS} characters")
    limits = ctx.sandbox_limits or limits_for("low")
    data = {"inputs": dict(args.get("inputs") or {}), "memory": "", "state": {}}
    if ctx.sandbox is not None:
        done = await ctx.sandbox.run(code, data, limits)
    else:
        async with SandboxPool(size=1) as pool:
            done = await pool.run(code, data, limits)
    if not done.ok:
        raise ToolError(done.message)
    return {"result": done.result, "stdout": done.stdout}


PYTHON_EXEC = FunctionTool(
    name="python_exec",
    description=(
        "Run a short Python snippet in a sandbox and get its `result` back. Set the variable `result` to a "
        "JSON value; `inputs` holds the `inputs` argument. Allowed imports: math, json, re, datetime, "
        "statistics, itertools, functools, collections. No files, network, classes or names starting with '_'."
    ),
    parameters=object_schema(
        {
            "code": {"type": "string", "description": "Python that sets `result`, e.g. result = sum(inputs['xs'])"},
            "inputs": {"type": "object", "description": "Data the code reads as `inputs`."},
        },
        required=["code"],
    ),
    fn=_python_exec,
    timeout_s=130.0,
)
