"""The sandbox's figures for ``ca-actors bench``: a cached 20-line node through the pool, a cold start."""

from __future__ import annotations

import statistics
import time
from typing import Any

from actors.sandbox._limits import limits_for
from actors.sandbox._pool import SandboxPool

# A 20-line node: inputs in, a loop, a function, a comprehension, an import, an f-string, a dict out.
NODE_20_LINES = """\
import statistics

def bucket(value, size):
    return value // size * size

values = inputs["values"]
total = 0
for v in values:
    total += v
buckets = {}
for v in values:
    key = bucket(v, 10)
    buckets[key] = buckets.get(key, 0) + 1
evens = [v for v in values if v % 2 == 0]
mean = statistics.mean(values)
label = f"{len(values)} values, mean {mean:.2f}"
result = {
    "total": total, "evens": len(evens), "label": label,
    "buckets": sorted(buckets.items()),
}
"""
INPUTS = {"inputs": {"values": list(range(50))}}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def bench_sandbox(runs: int = 300) -> dict[str, Any]:
    """Cold first execution (worker start, compile, run), then `runs` cached executions on one worker.

    Returns:
        ``cold_first_execution_ms``, ``first_compile_ms`` (a new source on a warm worker), ``cached_p50_ms``,
        ``cached_p95_ms`` (end to end through the pool), ``executions_per_s`` (one worker, one at a time),
        ``network`` (what isolated it: netns or audit).
    """
    limits = limits_for("low")
    started = time.perf_counter()
    async with SandboxPool(size=1, recycle_after=runs + 10) as pool:
        cold = await pool.run(NODE_20_LINES, INPUTS, limits)
        cold_ms = (time.perf_counter() - started) * 1000
        if not cold.ok:
            raise RuntimeError(f"the bench node failed in the sandbox: {cold.message}")
        t0 = time.perf_counter()
        fresh = await pool.run(NODE_20_LINES + "\nresult['again'] = 1\n", INPUTS, limits)
        compile_ms = (time.perf_counter() - t0) * 1000
        assert fresh.ok, fresh.message
        times: list[float] = []
        t_all = time.perf_counter()
        for _ in range(runs):
            t = time.perf_counter()
            done = await pool.run(NODE_20_LINES, INPUTS, limits)
            times.append((time.perf_counter() - t) * 1000)
            assert done.ok, done.message
        elapsed = time.perf_counter() - t_all
        network = pool.stats().network
    return {
        "node_lines": NODE_20_LINES.count("\n"),
        "runs": runs,
        "cold_first_execution_ms": round(cold_ms, 1),
        "first_compile_ms": round(compile_ms, 3),
        "cached_p50_ms": _pct(times, 0.5),
        "cached_p95_ms": _pct(times, 0.95),
        "cached_mean_ms": round(statistics.fmean(times), 3),
        "executions_per_s": round(runs / elapsed, 1),
        "network": network,
    }
