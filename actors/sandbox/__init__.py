"""The sandbox for node code and the ``python_exec`` tool: RestrictedPython inside isolated processes.

    async with SandboxPool() as pool:
        result = await pool.run("result = sum(inputs['xs'])", {"inputs": {"xs": [1, 2]}}, limits_for("low"))

Layer 1 (`_policy`) compiles the code under RestrictedPython's policy; layer 2 (`_pool`, `_child`)
runs it in a pre-started worker process with rlimits, no network, no environment and a wall-clock
kill. `_docker` runs the same contract in a container. See docs/sandbox.md.
"""

from actors.sandbox._bench import bench_sandbox
from actors.sandbox._docker import run_in_docker
from actors.sandbox._limits import (
    DEFAULT_PRESET,
    OVERRIDES,
    PRESETS,
    LimitName,
    Limits,
    Preset,
    SandboxError,
    SandboxResult,
    limits_for,
)
from actors.sandbox._pool import PoolStats, SandboxPool

__all__ = [
    "DEFAULT_PRESET",
    "OVERRIDES",
    "PRESETS",
    "LimitName",
    "Limits",
    "PoolStats",
    "Preset",
    "SandboxError",
    "SandboxPool",
    "SandboxResult",
    "bench_sandbox",
    "limits_for",
    "run_in_docker",
]
