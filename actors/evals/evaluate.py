"""Evaluating a flow: a JSONL dataset run on a stack, graded by scorers, logged to MLflow.

A dataset line is ``{"inputs": {...}, "expectations": {...}}`` or a flat object of inputs. Every
example runs as a real run over the bus; its cost and tokens are the sums of the run's ``llm.finished``
events. `log_run` records one MLflow run: an ``mlflow.genai.evaluate`` result with the scorers, plus
success rate, cost, latency and token metrics.

CaActorsError
└── EvalError (also ValueError)   a dataset line is invalid, or MLflow is missing
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from actors.evals.scorers import AnyScorer, Judge, Score, Scorer, ScorerError
from actors.flow.llm import LLMReply, LLMRequest
from actors.flow.plan import Plan
from actors.launch import LocalStack
from actors.observer.summary import summarize as summarize_run
from actors.runtime.follow import events, final_record
from actors.scheduler.messages import RunAnswer, TriggerInputs
from actors.tracking import experiment_id, import_mlflow
from actors.worker.llm_client import BusLLMClient
from bus import Bus, Event, NoResponderError, RequestTimeoutError, Role, subjects
from configs import FlowSpec, InputError, Settings, initial_state
from configs.errors import ActorError, CaActorsError

# The `outputs` MLflow gets for a run that ended without a state.
_EMPTY: dict[str, Any] = {}

JudgeCall = Callable[[LLMRequest], LLMReply]


class EvalError(CaActorsError, ValueError):
    """A dataset is invalid (with file and line), or an evaluation cannot be logged."""

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class Example:
    """One dataset row: trigger inputs, expected values of state fields, and where it came from."""

    inputs: dict[str, Any]
    expectations: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass
class RowResult:
    """What one run of one example produced."""

    example: Example
    run_id: str | None
    status: str
    state: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    llm_calls: int = 0

    def summary(self) -> dict[str, Any]:
        """The row as printed by ``--json``."""
        return {
            "line": self.example.line,
            "inputs": self.example.inputs,
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 3),
            "cost_usd": self.cost_usd,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


@dataclass(frozen=True)
class LoggedRun:
    """An MLflow run written by `log_run` and the metrics logged on it."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]


def load_dataset(path: Path, spec: FlowSpec | None = None) -> list[Example]:
    """Read a JSONL dataset; blank lines are skipped.

    Args:
        path: The file.
        spec: The flow; when given, every example's inputs are checked against its state fields.

    Raises:
        EvalError: The file cannot be read, a line is not a JSON object of the accepted shape, or
            (with `spec`) its inputs do not fit the flow; the error names the line.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read the dataset: {exc}", file=file) from None
    examples = [parse_example(line, file, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not examples:
        raise EvalError("the dataset has no examples (one JSON object per line)", file=file)
    if spec is not None:
        for example in examples:
            check_inputs(spec, example.inputs, file=file, line=example.line)
    return examples


def parse_example(text: str, file: str = "<dataset>", line: int = 0) -> Example:
    """One dataset line: `{"inputs": {...}, "expectations": {...}}` or a flat object of inputs.

    Raises:
        EvalError: Not JSON, not an object, or `inputs`/`expectations` not objects, or other keys
            beside them.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalError(f"not JSON: {exc.msg} (column {exc.colno})", file=file, line=line) from None
    if not isinstance(data, dict):
        raise EvalError(f"expected a JSON object, got {type(data).__name__}", file=file, line=line)
    if "inputs" not in data:
        return Example(inputs=data, line=line)
    extra = sorted(set(data) - {"inputs", "expectations"})
    if extra:
        raise EvalError(
            f"unknown key(s) {', '.join(map(repr, extra))} beside 'inputs'; a line is "
            '{"inputs": {...}, "expectations": {...}} or a flat object of inputs',
            file=file,
            line=line,
        )
    inputs, expectations = data["inputs"], data.get("expectations") or {}
    for key, value in (("inputs", inputs), ("expectations", expectations)):
        if not isinstance(value, dict):
            raise EvalError(f"{key!r} must be an object, got {type(value).__name__}", file=file, line=line)
    return Example(inputs=inputs, expectations=expectations, line=line)


def check_inputs(spec: FlowSpec, inputs: Mapping[str, Any], *, file: str = "", line: int = 0) -> None:
    """Reject inputs the flow's scheduler would reject, before anything runs.

    Raises:
        EvalError: The inputs do not fit the flow's state fields.
    """
    try:
        initial_state(spec, inputs)
    except InputError as exc:
        raise EvalError("; ".join(exc.problems), file=file, line=line) from None


def check_expectations(scorers: Sequence[AnyScorer], examples: Sequence[Example], file: str = "") -> None:
    """Make sure every example has the expectations its scorers compare with.

    Raises:
        EvalError: An example lacks one (its line is named).
    """
    for scorer in scorers:
        if isinstance(scorer, Scorer) and scorer.needs_expectation:
            for example in examples:
                if scorer.field not in example.expectations:
                    raise EvalError(
                        f"no expectation {scorer.field!r} for scorer {scorer.spec!r}; "
                        f'give it as {{"inputs": {{...}}, "expectations": {{"{scorer.field}": ...}}}}',
                        file=file,
                        line=example.line,
                    )


async def run_example(bus: Bus, flow: str, example: Example, *, timeout_s: float | None = None) -> RowResult:
    """Trigger one run of `flow` with the example's inputs and follow it to its end.

    Never raises for a failed, rejected or timed-out run: the row says what happened.
    """
    started = time.perf_counter()
    try:
        answer = await bus.request(subjects.trigger(flow), TriggerInputs(example.inputs), RunAnswer, timeout_s=15)
    except (NoResponderError, RequestTimeoutError):
        return RowResult(example, None, "error", error="no scheduler answered the trigger")
    if answer.run_id is None:
        return RowResult(example, None, "rejected", error=str(answer.error))
    run_id = answer.run_id
    row = RowResult(example, run_id, "running")
    seen: list[Event] = []
    try:
        async for event in events(bus, run_id, timeout_s=timeout_s):
            seen.append(event)  # kept one by one: a timeout still counts what came before it
    except TimeoutError as exc:
        row.status, row.error = "timeout", str(exc)
    if seen:  # LLM usage counted the way run history counts it
        usage = summarize_run(seen).history()
        row.llm_calls, row.cost_usd = usage.llm_calls, usage.cost_usd
        row.tokens_in, row.tokens_out = usage.tokens_in, usage.tokens_out
    row.latency_ms = (time.perf_counter() - started) * 1000
    record = await final_record(bus, run_id)
    row.state = dict(record.state)
    if row.status != "timeout":
        row.status, row.error = record.status, record.error
    return row


async def run_examples(
    bus: Bus,
    flow: str,
    examples: Sequence[Example],
    *,
    repeat: int = 1,
    concurrency: int = 4,
    timeout_s: float | None = None,
) -> list[RowResult]:
    """Run every example `repeat` times, at most `concurrency` runs at once; rows in dataset order."""
    slots = asyncio.Semaphore(concurrency)
    jobs = [example for example in examples for _ in range(repeat)]

    async def one(example: Example) -> RowResult:
        async with slots:
            return await run_example(bus, flow, example, timeout_s=timeout_s)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(example)) for example in jobs]
    return [task.result() for task in tasks]


def summarize(rows: Sequence[RowResult]) -> dict[str, float]:
    """Success rate, cost, latency and token metrics of some rows (MLflow metric names)."""
    if not rows:
        return {}
    latencies = sorted(row.latency_ms for row in rows)
    n = len(rows)
    return {
        "runs": float(n),
        "success_rate": sum(row.status == "succeeded" for row in rows) / n,
        "cost_usd_total": sum(row.cost_usd for row in rows),
        "cost_usd": sum(row.cost_usd for row in rows) / n,
        "latency_ms": statistics.fmean(latencies),
        "latency_p50_ms": statistics.median(latencies),
        "latency_p95_ms": latencies[max(0, math.ceil(0.95 * n) - 1)],
        "tokens": sum(row.tokens_in + row.tokens_out for row in rows) / n,
        "tokens_in_total": float(sum(row.tokens_in for row in rows)),
        "tokens_out_total": float(sum(row.tokens_out for row in rows)),
    }


def quality(metrics: Mapping[str, float], scorers: Sequence[AnyScorer]) -> float:
    """The mean of the scorers' means, or the success rate without scorers."""
    values = [metrics[s.name] for s in scorers if s.name in metrics]
    if values:
        return statistics.fmean(values)
    return metrics.get("success_rate", 0.0)


def bus_judge(bus: Bus, loop: asyncio.AbstractEventLoop, *, timeout_s: float = 120.0) -> JudgeCall:
    """A blocking judge call for MLflow's scorer threads: the request runs on `loop` (which must be free)."""
    client = BusLLMClient(bus, timeout_s=timeout_s)

    def call(request: LLMRequest) -> LLMReply:
        return asyncio.run_coroutine_threadsafe(client.complete(request), loop).result(timeout=timeout_s + 10)

    return call


def mlflow_module() -> ModuleType:
    """Import MLflow (offline: see `actors.observer.mlflow_sink.import_mlflow`) with its GenAI evaluation.

    Raises:
        EvalError: MLflow is not installed.
    """
    try:
        mlflow: ModuleType = import_mlflow()
    except ActorError as exc:
        raise EvalError(str(exc)) from None
    import mlflow.genai

    return mlflow


def log_run(
    *,
    uri: str,
    experiment: str,
    run_name: str,
    rows: Sequence[RowResult],
    scorers: Sequence[AnyScorer],
    judge: JudgeCall | None = None,
    tags: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> LoggedRun:
    """Log one evaluation as an MLflow run (blocking: call it in a thread).

    The scorers run inside ``mlflow.genai.evaluate`` (their means become `<name>/mean` metrics, each
    row an assessed trace); `quality`, success rate, cost, latency and tokens are logged on the same run.

    Raises:
        EvalError: MLflow is not installed, or a judge scorer has no `judge` call.
    """
    mlflow = mlflow_module()
    exp_id = experiment_id(mlflow, uri, experiment)
    metrics = summarize(rows)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=dict(tags or {})) as run:
        if params:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
        if scorers and rows:
            data = [
                {
                    "inputs": row.example.inputs,
                    "outputs": row.state or _EMPTY,
                    **({"expectations": row.example.expectations} if row.example.expectations else {}),
                }
                for row in rows
            ]
            wrapped = [_mlflow_scorer(scorer, judge) for scorer in scorers]
            # evaluate() prints a banner on stdout, which belongs to our own output (`--json`).
            with contextlib.redirect_stdout(io.StringIO()):
                result = mlflow.genai.evaluate(data=data, scorers=wrapped)
            for scorer in scorers:
                value = result.metrics.get(f"{scorer.name}/mean")
                if value is not None:
                    metrics[scorer.name] = float(value)
        metrics["quality"] = quality(metrics, scorers)
        mlflow.log_metrics(metrics)
        return LoggedRun(run_id=str(run.info.run_id), experiment_id=exp_id, metrics=metrics)


def _mlflow_scorer(scorer: AnyScorer, judge: JudgeCall | None) -> Any:
    from mlflow.entities import Feedback  # optional dependency
    from mlflow.genai.scorers import scorer as mlflow_scorer

    def feedback(score: Score) -> Any:
        return Feedback(value=score.value, rationale=score.rationale or None)

    if isinstance(scorer, Judge):
        if judge is None:
            raise EvalError(f"scorer {scorer.spec!r} needs the LLM gateway")
        call, grader = judge, scorer

        def judged(inputs: dict[str, Any], outputs: dict[str, Any], expectations: dict[str, Any]) -> Any:
            try:
                return feedback(grader.grade(call(grader.request(inputs or {}, outputs or {}, expectations or {}))))
            except (ScorerError, EvalError) as exc:
                # Scored 0, not left out: MLflow's mean skips errored rows, which would flatter the flow.
                return Feedback(value=0.0, rationale=f"the judge failed: {exc}")

        return mlflow_scorer(judged, name=scorer.name)
    graded = scorer

    def scored(outputs: dict[str, Any], expectations: dict[str, Any]) -> Any:
        try:
            return feedback(graded.score(outputs or {}, expectations or {}))
        except ScorerError as exc:
            return Feedback(error=exc)

    return mlflow_scorer(scored, name=scorer.name)


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 500 else text[:497] + "..."


@dataclass(frozen=True)
class EvalReport:
    """`ca-actors eval`'s outcome: the MLflow run, its metrics and every row."""

    flow: str
    experiment: str
    logged: LoggedRun
    rows: list[RowResult]

    def summary(self) -> dict[str, Any]:
        """The report as printed by ``--json``."""
        return {
            "flow": self.flow,
            "experiment": self.experiment,
            "experiment_id": self.logged.experiment_id,
            "mlflow_run_id": self.logged.run_id,
            "metrics": self.logged.metrics,
            "rows": [row.summary() for row in self.rows],
        }


async def evaluate_plan(
    settings: Settings,
    plan: Plan,
    examples: Sequence[Example],
    scorers: Sequence[AnyScorer],
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    concurrency: int = 4,
    timeout_s: float | None = None,
) -> EvalReport:
    """Run `plan` over `examples` on an in-process stack and log the result to MLflow.

    Args:
        settings: Settings of the stack (`mlflow_uri()`, `mlflow_experiment`, model override, mock script).
        plan: The compiled flow.
        examples: The dataset.
        scorers: How rows are graded.
        experiment: MLflow experiment (default: `settings.mlflow_experiment`).
        run_name: MLflow run name (default: `eval-<flow>`).
        concurrency: Runs in flight at once.
        timeout_s: Give up on a run after this long (default: the flow's `config.execution.timeout`).

    Raises:
        EvalError: MLflow is missing.
    """
    name = experiment or settings.mlflow_experiment
    async with LocalStack(settings, [plan]) as stack:
        assert stack.client is not None  # set by start()
        rows = await run_examples(
            stack.client, plan.flow, examples, concurrency=concurrency, timeout_s=timeout_s or plan.timeout_s
        )
        # The judge asks the LLM gateway as a worker would (the CLI's role may not).
        judge_bus = await stack.connect("judge", Role.WORKER)
        judge = bus_judge(judge_bus, asyncio.get_running_loop(), timeout_s=settings.llm_timeout_s)
        logged = await asyncio.to_thread(
            log_run,
            uri=settings.mlflow_uri(),
            experiment=name,
            run_name=run_name or f"eval-{plan.flow}",
            rows=rows,
            scorers=scorers,
            judge=judge,
            tags={"ca.kind": "eval", "ca.flow": plan.flow, "ca.plan_version": plan.version},
            params={
                "flow": plan.flow,
                "plan_version": plan.version,
                "examples": len(examples),
                "scorers": ", ".join(s.spec for s in scorers),
                "llm_override": settings.llm_override or "",
            },
        )
    return EvalReport(flow=plan.flow, experiment=name, logged=logged, rows=rows)
