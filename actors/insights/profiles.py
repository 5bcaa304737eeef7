"""Latency profiles over stored run history (``ca-actors report profile``): pure functions from `RunHistory`.

:func:`profile_run` breaks one run's time down per step and per node and finds its critical path and
bottleneck; :func:`profile_flow` gives p50/p95 per node over many runs. Step records are read
defensively (older ones lack most timing keys: a missing number counts as 0). Columns: docs/reports.md.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from actors.insights.reports import fmt_ms, rounded, run_totals, step_number, step_number_or_zero, table, when
from store import RunHistory

# The parts of a step's wall time: waiting in the queue, the worker's own work, LLM calls, tool calls.
COMPONENTS = ("queue", "exec", "llm", "tool")
# Slack when comparing epoch timestamps written by different processes.
_EPS_S = 1e-6


@dataclass(frozen=True)
class StepTiming:
    """Where one step's time went. ``wall_ms`` = ``queue_ms`` + ``duration_ms`` (queued → finished);
    ``exec_ms`` = ``duration_ms`` − ``llm_ms`` − ``tool_ms`` (never below 0); ``offset_ms`` is when it was
    queued (or started), counted from the start of the run."""

    step_id: str
    node: str
    iteration: int
    status: str
    offset_ms: float | None
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    queue_ms: float
    duration_ms: float
    exec_ms: float
    llm_ms: float
    tool_ms: float
    wall_ms: float
    llm_calls: int
    tool_calls: int
    cost_usd: float
    after: str | None
    critical: bool


@dataclass(frozen=True)
class NodeTiming:
    """The sums over one node's steps in a run, and how much of the critical path they take."""

    node: str
    steps: int
    queue_ms: float
    exec_ms: float
    llm_ms: float
    tool_ms: float
    wall_ms: float
    llm_calls: int
    cost_usd: float
    critical_ms: float
    critical_share_pct: float


@dataclass(frozen=True)
class Bottleneck:
    """The node with the largest share of the critical path, and the part of its time that dominates."""

    node: str
    critical_ms: float
    share_pct: float
    dominant: str


@dataclass(frozen=True)
class RunProfile:
    """Where the time of one run went: per step, per node, along the critical path."""

    run_id: str
    flow: str
    status: str
    created_at: float
    duration_ms: float | None
    cost_usd: float
    steps: list[StepTiming]
    nodes: list[NodeTiming]
    critical_path: list[str]
    critical_path_ms: float
    bottleneck: Bottleneck | None


def _step_timing(step: Mapping[str, Any], origin: float | None) -> StepTiming:
    queued, started, finished = (step_number(step, k) for k in ("queued_at", "started_at", "finished_at"))
    queue = step_number(step, "queue_ms")
    if queue is None:
        queue = (started - queued) * 1000 if queued is not None and started is not None else 0.0
    duration = step_number(step, "duration_ms")
    if duration is None:
        duration = (finished - started) * 1000 if finished is not None and started is not None else 0.0
    llm, tool = step_number_or_zero(step, "llm_ms"), step_number_or_zero(step, "tool_ms")
    ready = queued if queued is not None else started
    after = step.get("after")
    return StepTiming(
        step_id=str(step.get("step_id", "")),
        node=str(step.get("node", "?")),
        iteration=int(step_number_or_zero(step, "iteration")),
        status=str(step.get("status", "?")),
        offset_ms=(ready - origin) * 1000 if ready is not None and origin is not None else None,
        queued_at=queued,
        started_at=started,
        finished_at=finished,
        queue_ms=max(queue, 0.0),
        duration_ms=max(duration, 0.0),
        exec_ms=max(duration - llm - tool, 0.0),
        llm_ms=llm,
        tool_ms=tool,
        wall_ms=max(queue, 0.0) + max(duration, 0.0),
        llm_calls=int(step_number_or_zero(step, "llm_calls")),
        tool_calls=int(step_number_or_zero(step, "tool_calls")),
        cost_usd=step_number_or_zero(step, "cost_usd"),
        after=after if isinstance(after, str) else None,
        critical=False,
    )


def critical_path(steps: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices into `steps` of the chain that ended the run, first step first.

    Starts at the step that finished last and follows each step's ``after`` link back. A step whose
    record has no ``after`` key (older records) or names an unknown step is linked to the step that
    finished last before it was queued (or, without ``queued_at``, started); ``after: None`` ends the chain.
    """
    ends = [(step_number(s, "finished_at"), i) for i, s in enumerate(steps)]
    finished = [(end, i) for end, i in ends if end is not None]
    if not finished:
        return []
    current = max(finished)[1]
    by_id = {str(s.get("step_id")): i for i, s in enumerate(steps) if s.get("step_id") is not None}
    path, seen = [current], {current}
    while True:
        step = steps[current]
        if "after" in step and step["after"] is None:
            break
        link = step.get("after")
        previous = by_id.get(str(link)) if link is not None else None
        if previous is None:
            ready = step_number(step, "queued_at")
            ready = step_number(step, "started_at") if ready is None else ready
            earlier = [(end, i) for end, i in finished if ready is not None and end <= ready + _EPS_S]
            previous = max(((end, i) for end, i in earlier if i not in seen), default=(None, None))[1]
        if previous is None or previous in seen:
            break
        path.append(previous)
        seen.add(previous)
        current = previous
    return path[::-1]


def _dominant(steps: Sequence[StepTiming]) -> str:
    parts = {c: sum(getattr(s, f"{c}_ms") for s in steps) for c in COMPONENTS}
    return max(COMPONENTS, key=lambda c: parts[c])


def profile_run(run: RunHistory) -> RunProfile:
    """Per-step and per-node timings of one run, its critical path and its bottleneck node.

    The critical path's time runs from when its first step was queued (or started) until its last step
    finished; each node's share of it is the wall time (queue + duration) of its steps on the path. The
    bottleneck is the node with the largest share (ties: the node that comes first on the path).
    """
    readies = [
        t for s in run.steps for t in (step_number(s, "queued_at"), step_number(s, "started_at")) if t is not None
    ]
    origin = min([run.created_at, *readies]) if readies else run.created_at
    path = critical_path(run.steps)
    on_path = set(path)
    steps = [replace(_step_timing(s, origin), critical=i in on_path) for i, s in enumerate(run.steps)]
    chain = [steps[i] for i in path]
    path_ms = 0.0
    if chain:
        first, last = chain[0], chain[-1]
        begin = first.queued_at if first.queued_at is not None else first.started_at
        if begin is not None and last.finished_at is not None:
            path_ms = (last.finished_at - begin) * 1000
        path_ms = max(path_ms, sum(s.wall_ms for s in chain))
    nodes: list[NodeTiming] = []
    for node in dict.fromkeys(s.node for s in steps):
        mine = [s for s in steps if s.node == node]
        critical_ms = sum(s.wall_ms for s in chain if s.node == node)
        nodes.append(
            NodeTiming(
                node=node,
                steps=len(mine),
                queue_ms=sum(s.queue_ms for s in mine),
                exec_ms=sum(s.exec_ms for s in mine),
                llm_ms=sum(s.llm_ms for s in mine),
                tool_ms=sum(s.tool_ms for s in mine),
                wall_ms=sum(s.wall_ms for s in mine),
                llm_calls=sum(s.llm_calls for s in mine),
                cost_usd=sum(s.cost_usd for s in mine),
                critical_ms=critical_ms,
                critical_share_pct=100 * critical_ms / path_ms if path_ms > 0 else 0.0,
            )
        )
    bottleneck = None
    ranked = sorted((n for n in nodes if n.critical_ms > 0), key=lambda n: -n.critical_ms)
    if ranked:
        top = ranked[0]
        dominant = _dominant([s for s in chain if s.node == top.node])
        bottleneck = Bottleneck(top.node, top.critical_ms, top.critical_share_pct, dominant)
    nodes.sort(key=lambda n: (-n.wall_ms, n.node))
    duration = run.duration_ms
    if duration is None and run.finished_at is not None:
        duration = (run.finished_at - run.created_at) * 1000
    return RunProfile(
        run_id=run.run_id,
        flow=run.flow,
        status=run.status,
        created_at=run.created_at,
        duration_ms=duration,
        cost_usd=run_totals(run)[3],
        steps=steps,
        nodes=nodes,
        critical_path=[s.step_id for s in chain],
        critical_path_ms=path_ms,
        bottleneck=bottleneck,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100) of `values`, interpolating linearly between ranks (numpy's default).

    Raises:
        ValueError: `values` is empty or `q` is outside 0–100.
    """
    if not values or not 0 <= q <= 100:
        raise ValueError(f"percentile needs values and 0 <= q <= 100, got {len(values)} values and q={q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Spread:
    """The median and 95th percentile of a set of samples, in milliseconds (or percent)."""

    p50: float
    p95: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of `values` (0/0 when there are none)."""
        return cls(percentile(values, 50), percentile(values, 95)) if values else cls(0.0, 0.0)


@dataclass(frozen=True)
class NodeStats:
    """One node over many runs. Latencies are per step (one sample per execution of the node);
    ``critical_share_pct`` is per run (0 in runs where the node is not on the critical path)."""

    node: str
    runs: int
    steps: int
    wall_ms: Spread
    queue_ms: Spread
    exec_ms: Spread
    llm_ms: Spread
    tool_ms: Spread
    critical_share_pct: Spread
    bottleneck_runs: int
    cost_usd: float


@dataclass(frozen=True)
class FlowProfile:
    """Per-node latency percentiles over the runs of one flow, and the node that usually bounds a run."""

    flow: str
    runs: int
    run_ids: list[str]
    duration_ms: Spread
    critical_path_ms: Spread
    nodes: list[NodeStats]
    bottleneck: str | None


def profile_flow(flow: str, runs: Sequence[RunHistory]) -> FlowProfile:
    """p50/p95 per node over `runs`, and the flow's bottleneck.

    The bottleneck is the node with the highest median share of a run's critical path (a node off the
    path counts 0 in that run): the node that typically decides how long a run takes. Ties go to the
    node that was the single-run bottleneck more often.
    """
    profiles = [profile_run(r) for r in runs]
    names = list(dict.fromkeys(s.node for p in profiles for s in p.steps))
    stats: list[NodeStats] = []
    for node in names:
        mine = [s for p in profiles for s in p.steps if s.node == node]
        shares = [next((n.critical_share_pct for n in p.nodes if n.node == node), 0.0) for p in profiles]
        stats.append(
            NodeStats(
                node=node,
                runs=sum(any(s.node == node for s in p.steps) for p in profiles),
                steps=len(mine),
                wall_ms=Spread.of([s.wall_ms for s in mine]),
                queue_ms=Spread.of([s.queue_ms for s in mine]),
                exec_ms=Spread.of([s.exec_ms for s in mine]),
                llm_ms=Spread.of([s.llm_ms for s in mine]),
                tool_ms=Spread.of([s.tool_ms for s in mine]),
                critical_share_pct=Spread.of(shares),
                bottleneck_runs=sum(p.bottleneck is not None and p.bottleneck.node == node for p in profiles),
                cost_usd=sum(s.cost_usd for s in mine),
            )
        )
    stats.sort(key=lambda n: (-n.critical_share_pct.p50, -n.bottleneck_runs, -n.wall_ms.p50, n.node))
    bottleneck = stats[0].node if stats and (stats[0].critical_share_pct.p50 > 0 or stats[0].bottleneck_runs) else None
    return FlowProfile(
        flow=flow,
        runs=len(profiles),
        run_ids=[p.run_id for p in profiles],
        duration_ms=Spread.of([p.duration_ms for p in profiles if p.duration_ms is not None]),
        critical_path_ms=Spread.of([p.critical_path_ms for p in profiles if p.critical_path]),
        nodes=stats,
        bottleneck=bottleneck,
    )


def profile_json(profile: RunProfile | FlowProfile) -> str:
    """A run or flow profile as JSON (floats rounded to 9 decimals)."""
    return json.dumps(rounded(asdict(profile)), indent=2)


def profile_text(profile: RunProfile) -> str:
    """A run profile for a terminal: a step table with a timeline, a node table, the critical path."""
    p = profile
    head = [
        f"run {p.run_id}  flow {p.flow}  {p.status}  created {when(p.created_at)}",
        f"duration {fmt_ms(p.duration_ms)}  critical path {fmt_ms(p.critical_path_ms)}  "
        f"cost ${p.cost_usd:.6f}  {len(p.steps)} step(s)",
    ]
    if not p.steps:
        return "\n".join([*head, "no steps recorded"])
    starts = [s.offset_ms for s in p.steps if s.offset_ms is not None]
    span = max((o + s.wall_ms for s in p.steps if (o := s.offset_ms) is not None), default=0.0)
    mapped = _mapped(p.steps)
    step_rows = [
        [
            ("* " if s.critical else "  ") + label(s, (s.node, s.iteration) in mapped),
            s.status,
            fmt_ms(s.offset_ms),
            *(fmt_ms(getattr(s, f"{c}_ms")) for c in (*COMPONENTS, "wall")),
            f"{s.cost_usd:.6f}",
            _timeline(s, min(starts, default=0.0), span),
        ]
        for s in p.steps
    ]
    lines = [*head, ""]
    lines += table(["STEP", "STATUS", "AT", "QUEUE", "EXEC", "LLM", "TOOL", "WALL", "COST USD", "TIMELINE"], step_rows)
    lines.append(
        "* on the critical path; AT: queued, counted from the start of the run; timeline: '-' queued, '#' running"
    )
    node_rows = [
        [
            n.node,
            str(n.steps),
            *(fmt_ms(getattr(n, f"{c}_ms")) for c in (*COMPONENTS, "wall")),
            f"{n.cost_usd:.6f}",
            fmt_ms(n.critical_ms),
            f"{n.critical_share_pct:.0f}%",
        ]
        for n in p.nodes
    ]
    lines += [
        "",
        *table(["NODE", "STEPS", "QUEUE", "EXEC", "LLM", "TOOL", "WALL", "COST USD", "CRITICAL", "SHARE"], node_rows),
    ]
    names = {s.step_id: label(s, (s.node, s.iteration) in mapped) for s in p.steps}
    lines += ["", f"critical path: {' → '.join(names[i] for i in p.critical_path)}  ({fmt_ms(p.critical_path_ms)})"]
    if p.bottleneck is not None:
        b = p.bottleneck
        share = f"{b.share_pct:.0f}% of the critical path"
        lines.append(f"bottleneck: {b.node}, {share} ({fmt_ms(b.critical_ms)}, mostly {b.dominant})")
    return "\n".join(lines)


def flow_profile_text(profile: FlowProfile) -> str:
    """A flow profile for a terminal: p50/p95 per node and the bottleneck."""
    p = profile
    lines = [
        f"flow {p.flow}: {p.runs} run(s)  duration p50 {fmt_ms(p.duration_ms.p50)} p95 {fmt_ms(p.duration_ms.p95)}  "
        f"critical path p50 {fmt_ms(p.critical_path_ms.p50)} p95 {fmt_ms(p.critical_path_ms.p95)}",
        "",
    ]
    rows = [
        [
            n.node,
            str(n.runs),
            str(n.steps),
            *(fmt_ms(getattr(getattr(n, f"{c}_ms"), q)) for c in ("wall", "queue", "llm") for q in ("p50", "p95")),
            f"{n.critical_share_pct.p50:.0f}%",
            str(n.bottleneck_runs),
            f"{n.cost_usd:.6f}",
        ]
        for n in p.nodes
    ]
    header = ["NODE", "RUNS", "STEPS", "WALL P50", "WALL P95", "QUEUE P50", "QUEUE P95", "LLM P50", "LLM P95"]
    lines += table([*header, "CRIT P50", "BOTTLENECK", "COST USD"], rows)
    if p.bottleneck is not None:
        top = next(n for n in p.nodes if n.node == p.bottleneck)
        lines += [
            "",
            f"bottleneck: {top.node}, median {top.critical_share_pct.p50:.0f}% of a run's critical path "
            f"(the bottleneck of {top.bottleneck_runs} of {p.runs} run(s))",
        ]
    return "\n".join(lines)


def label(step: StepTiming, mapped: bool = False) -> str:
    """A step's name in tables: its node, ``#iteration`` after the first iteration, ``[index]`` for map items."""
    name = step.node if step.iteration == 0 else f"{step.node}#{step.iteration}"
    return f"{name}[{step.step_id.rsplit('.', 1)[-1]}]" if mapped else name


def _mapped(steps: list[StepTiming]) -> set[tuple[str, int]]:
    """(node, iteration) pairs that ran more than one step: map items, told apart by their index."""
    seen = Counter((s.node, s.iteration) for s in steps)
    return {key for key, count in seen.items() if count > 1}


def _timeline(step: StepTiming, origin_ms: float, span_ms: float, width: int = 24) -> str:
    if step.offset_ms is None or span_ms <= origin_ms:
        return ""
    scale = width / (span_ms - origin_ms)
    start = round((step.offset_ms - origin_ms) * scale)
    queued = round(step.queue_ms * scale)
    running = max(1, round(step.wall_ms * scale) - queued)
    bar = (" " * start + "-" * queued + "#" * running)[:width]
    return f"|{bar.ljust(width)}|"
