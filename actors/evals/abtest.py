"""A/B tests (`config.ab_test`) and quality gates (`config.gates`).

Each variant is the flow with some nodes' prompts and models replaced, compiled as a flow of its own
(`<flow>-<variant>`) so that all variants can run side by side on one stack. Every variant runs
`run_count` times per example and becomes one MLflow run of a shared experiment; the comparison picks
the winner: highest quality, then lowest mean cost, then lowest median latency. Gates are checked on
a metrics dict (an eval's, or the winner's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from actors.evals.evaluate import Example, LoggedRun, RowResult, bus_judge, log_run, mlflow_module, run_examples
from actors.evals.scorers import AnyScorer
from actors.flow.plan import Plan, compile_plan
from actors.launch import LocalStack
from actors.tools import tool_names
from bus import Role, new_id
from configs import ABTestSpec, GateSpec, Settings, VariantSpec, load_flow_text

# Quality values closer than this are a tie (then cost decides, then latency).
_TIE = 1e-9


def variant_plan(plan: Plan, variant: VariantSpec) -> Plan:
    """The flow of `plan` with the variant's overrides, named `<flow>-<variant>`, compiled.

    Raises:
        ConfigError: The variant makes the flow invalid (validation of `ab_test` catches this earlier).
    """
    spec = plan.spec
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data["flow"]["name"] = f"{spec.flow.name}-{variant.name}"
    for node in data["nodes"]:
        override = variant.nodes.get(node["id"])
        llm: dict[str, Any] = dict(node.get("llm") or {})
        if variant.model is not None:
            llm["model"] = variant.model
        if override is not None:
            if override.prompt is not None:
                node["prompt"] = override.prompt
            for key in ("model", "temperature", "max_tokens"):
                value = getattr(override, key)
                if value is not None:
                    llm[key] = value
        if llm:
            node["llm"] = llm
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return compile_plan(load_flow_text(text, f"{plan.file}#{variant.name}", tools=tool_names()))


def variant_params(variant: VariantSpec) -> dict[str, Any]:
    """A variant's overrides as flat MLflow params (`model`, `answer.prompt`, ...)."""
    params: dict[str, Any] = {"variant": variant.name}
    if variant.model is not None:
        params["model"] = variant.model
    for node_id, override in variant.nodes.items():
        for key, value in override.model_dump(exclude_none=True).items():
            params[f"{node_id}.{key}"] = value
    return params


@dataclass
class VariantResult:
    """One variant's runs and the MLflow run they were logged as."""

    variant: VariantSpec
    plan: Plan
    rows: list[RowResult]
    logged: LoggedRun | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """The logged metrics (empty before logging)."""
        return self.logged.metrics if self.logged is not None else {}


@dataclass(frozen=True)
class ABReport:
    """Every variant's result and the winner's name."""

    flow: str
    experiment: str
    ab_id: str
    results: list[VariantResult]
    winner: str

    def winner_metrics(self) -> dict[str, float]:
        """The metrics gates are checked on."""
        return next(r.metrics for r in self.results if r.variant.name == self.winner)

    def summary(self) -> dict[str, Any]:
        """The report as printed by ``--json``."""
        return {
            "flow": self.flow,
            "experiment": self.experiment,
            "ab_id": self.ab_id,
            "winner": self.winner,
            "variants": [
                {
                    "name": r.variant.name,
                    "flow": r.plan.flow,
                    "mlflow_run_id": r.logged.run_id if r.logged else None,
                    "metrics": r.metrics,
                    "rows": [row.summary() for row in r.rows],
                }
                for r in self.results
            ],
        }


def pick_winner(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """The best variant: highest quality, then lowest mean cost, then lowest median latency.

    Raises:
        ValueError: No variants.
    """
    if not metrics:
        raise ValueError("no variants to compare")
    best = max(m.get("quality", 0.0) for m in metrics.values())
    tied = [name for name, m in metrics.items() if best - m.get("quality", 0.0) <= _TIE]
    return min(
        tied,
        key=lambda name: (metrics[name].get("cost_usd", 0.0), metrics[name].get("latency_p50_ms", 0.0)),
    )


def comparison_table(metrics: Mapping[str, Mapping[str, float]], winner: str) -> str:
    """A text table of the variants (quality, success rate, cost, latency), the winner marked."""
    header = (
        f"{'VARIANT':20} {'QUALITY':>8} {'SUCCESS':>8} {'COST/RUN $':>11} {'COST $':>10} "
        f"{'P50 ms':>9} {'MEAN ms':>9} {'RUNS':>5}"
    )
    lines = [header]
    for name, m in metrics.items():
        mark = "  ← winner" if name == winner else ""
        lines.append(
            f"{name:20} {m.get('quality', 0.0):8.3f} {m.get('success_rate', 0.0):8.0%} {m.get('cost_usd', 0.0):11.6f} "
            f"{m.get('cost_usd_total', 0.0):10.6f} {m.get('latency_p50_ms', 0.0):9.1f} {m.get('latency_ms', 0.0):9.1f} "
            f"{int(m.get('runs', 0)):5d}{mark}"
        )
    return "\n".join(lines)


async def run_ab(
    settings: Settings,
    plan: Plan,
    ab: ABTestSpec,
    examples: Sequence[Example],
    scorers: Sequence[AnyScorer],
    *,
    experiment: str | None = None,
    run_count: int | None = None,
    concurrency: int = 4,
    timeout_s: float | None = None,
) -> ABReport:
    """Run every variant of `ab` over `examples` on one in-process stack and log each to MLflow.

    Args:
        settings: Stack settings (`mlflow_uri()`; `llm_override` replaces every variant's model too).
        plan: The flow as written.
        ab: Its `config.ab_test`.
        examples: What each variant runs on (each `run_count` times).
        scorers: How quality is graded (none: quality is the success rate).
        experiment: MLflow experiment (default: `ab.experiment`, else `settings.mlflow_experiment`).
        run_count: Overrides `ab.run_count`.
        concurrency: Runs in flight at once per variant.
        timeout_s: Give up on a run after this long (default: the flow's timeout).

    Raises:
        EvalError: MLflow is missing.
    """
    name = experiment or ab.experiment or settings.mlflow_experiment
    repeat = run_count or ab.run_count
    ab_id = new_id()[:12]
    results = [VariantResult(variant, variant_plan(plan, variant), []) for variant in ab.variants]
    async with LocalStack(settings, [r.plan for r in results]) as stack:
        client = stack.client
        assert client is not None  # set by start()

        async def run(result: VariantResult) -> None:
            result.rows = await run_examples(
                client,
                result.plan.flow,
                examples,
                repeat=repeat,
                concurrency=concurrency,
                timeout_s=timeout_s or plan.timeout_s,
            )

        if ab.parallel:
            async with asyncio.TaskGroup() as group:
                for result in results:
                    group.create_task(run(result))
        else:
            for result in results:
                await run(result)
        # The judge asks the LLM gateway as a worker would (the CLI's role may not).
        judge = bus_judge(
            await stack.connect("judge", Role.WORKER), asyncio.get_running_loop(), timeout_s=settings.llm_timeout_s
        )
        # One variant at a time: mlflow.genai.evaluate is not thread-safe.
        for result in results:
            result.logged = await asyncio.to_thread(
                log_run,
                uri=settings.mlflow_uri(),
                experiment=name,
                run_name=f"{plan.flow}-{result.variant.name}",
                rows=result.rows,
                scorers=scorers,
                judge=judge,
                tags={
                    "ca.kind": "ab",
                    "ca.ab_id": ab_id,
                    "ca.flow": plan.flow,
                    "ca.variant": result.variant.name,
                    "ca.plan_version": result.plan.version,
                },
                params={
                    **variant_params(result.variant),
                    "flow": plan.flow,
                    "run_count": repeat,
                    "examples": len(examples),
                    "scorers": ", ".join(s.spec for s in scorers),
                    "llm_override": settings.llm_override or "",
                },
            )
    winner = pick_winner({r.variant.name: r.metrics for r in results})
    winning = next(r for r in results if r.variant.name == winner)
    if winning.logged is not None:
        await asyncio.to_thread(_tag_winner, settings.mlflow_uri(), winning.logged.run_id)
    return ABReport(flow=plan.flow, experiment=name, ab_id=ab_id, results=results, winner=winner)


def _tag_winner(uri: str, run_id: str) -> None:
    mlflow = mlflow_module()
    mlflow.MlflowClient(tracking_uri=uri).set_tag(run_id, "ca.winner", "true")


@dataclass(frozen=True)
class GateResult:
    """One gate checked on some metrics: the value measured (None: not measured) and the verdict."""

    gate: GateSpec
    value: float | None

    @property
    def passed(self) -> bool:
        """True when the value was measured and lies within the gate's bounds."""
        if self.value is None:
            return False
        low, high = self.gate.min, self.gate.max
        return (low is None or self.value >= low) and (high is None or self.value <= high)

    @property
    def blocking(self) -> bool:
        """True when this gate failed and says `on_fail: fail` (or the seed's `FAIL` / `BLOCK_DEPLOY`)."""
        return not self.passed and self.gate.on_fail in ("fail", "block_deploy")

    @property
    def blocks_deploy(self) -> bool:
        """True when this gate failed and says `BLOCK_DEPLOY`: the result is not deployable."""
        return not self.passed and self.gate.on_fail == "block_deploy"

    def line(self) -> str:
        """`PASS quality = 0.900 (min 0.8)`, `FAIL ...`, or `WARN ...` for a failed `on_fail: warn` gate."""
        bounds = ", ".join(f"{k} {v:g}" for k, v in (("min", self.gate.min), ("max", self.gate.max)) if v is not None)
        verdict = "PASS" if self.passed else ("WARN" if self.gate.on_fail == "warn" else "FAIL")
        value = "not measured" if self.value is None else f"= {self.value:.6g}"
        named = f" [{self.gate.name}]" if self.gate.name and self.gate.name != self.gate.metric else ""
        blocked = ", blocks deploy" if self.blocks_deploy else ""
        return f"{verdict} {self.gate.metric}{named} {value} ({bounds}{blocked})"

    def summary(self) -> dict[str, Any]:
        """The gate as printed by ``--json``."""
        return {
            "name": self.gate.name or self.gate.metric,
            "metric": self.gate.metric,
            "value": self.value,
            "min": self.gate.min,
            "max": self.gate.max,
            "on_fail": self.gate.on_fail,
            "passed": self.passed,
        }


def deployable(gates: Sequence[GateResult]) -> bool:
    """False when a `BLOCK_DEPLOY` gate failed (``ca-actors deploy`` refuses such a result)."""
    return not any(g.blocks_deploy for g in gates)


def check_gates(gates: Sequence[GateSpec], metrics: Mapping[str, float]) -> list[GateResult]:
    """Check every enabled gate on `metrics` (a metric that was not measured fails its gate)."""
    return [GateResult(gate, metrics.get(gate.metric)) for gate in gates if gate.enabled]
