"""``ca-actors eval`` and ``ca-actors ab``: evaluate a flow over a dataset, compare A/B variants, check gates.

Exit codes: 0 done (and every `on_fail: fail` gate passed), 1 a blocking gate failed, 2 the flow,
dataset, scorers or options are invalid, or MLflow is missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from actors.cli.console import load_plan
from actors.cli.options import DataDir, LogLevel, MlflowUri, parse_inputs
from actors.evals.abtest import GateResult, check_gates, comparison_table, deployable, run_ab
from actors.evals.evaluate import EvalError, Example, check_expectations, check_inputs, evaluate_plan, load_dataset
from actors.evals.scorers import AnyScorer, ScorerError, parse_scorers, split_scorers
from actors.flow.plan import Plan
from actors.runtime.logs import configure_logging
from configs import Settings

Dataset = Annotated[
    Path | None,
    typer.Option("--dataset", "-d", help='JSONL: one {"inputs": {...}, "expectations": {...}} (or inputs) a line.'),
]
Scorers = Annotated[
    list[str] | None,
    typer.Option(
        "--scorers",
        "-s",
        help="Comma-separated, repeatable: exact:F, contains:F, regex:F:PATTERN, length:F:MIN:MAX, "
        "json_schema:F[:SCHEMA_FILE], judge[:F] (F: a state field).",
    ),
]
Judge = Annotated[
    str | None, typer.Option("--judge", help="Model of the LLM judge (adds a `judge` scorer), e.g. mock.")
]
Llm = Annotated[str | None, typer.Option("--llm", help="Use this model for every node (e.g. mock).")]
MockScript = Annotated[Path | None, typer.Option("--mock-script", help="YAML: node id → outputs, for the mock model.")]
Experiment = Annotated[
    str | None,
    typer.Option(
        "--experiment",
        help="MLflow experiment (default: $CA_MLFLOW_EXPERIMENT or ca-actors; for ab, ab_test.experiment first).",
    ),
]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Runs in flight at once (per variant).")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Give up on a run after this many seconds.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

EVAL_HELP = """Run FILE once per dataset example and log an MLflow evaluation (scores, cost, latency).

Every example runs on an in-process stack like `ca-actors run`; the run's final state is graded by the
scorers against the example's expectations, and the result is logged with mlflow.genai.evaluate to
the experiment (metrics: <scorer>/mean, quality, success_rate, cost_usd, latency_ms, ...).
The flow's `config.gates` are then checked: exit 1 when one with on_fail: fail does not pass.

Examples:

  ca-actors eval qa.yaml -d qa.jsonl -s exact:answer --llm mock

  ca-actors eval qa.yaml -d qa.jsonl -s "exact:answer,length:answer:1:200" --judge mock --json

  ca-actors eval qa.yaml -d qa.jsonl -s regex:answer:^[A-Z] --mlflow-uri sqlite:///mlflow.db --experiment qa
"""

AB_HELP = """Run every variant of FILE's `config.ab_test`, log each as an MLflow run, print the winner.

Each variant (prompt/model overrides per node) runs run_count times per example (a dataset, -i
inputs, or `ab_test.inputs`), all variants in one MLflow experiment; the table compares quality
(mean of the scorers, or the success rate without scorers), cost and latency. The winner has the
highest quality, then the lowest cost, then the lowest latency; `config.gates` are checked on it.

Examples:

  ca-actors ab qa.yaml --mock-script script.yaml

  ca-actors ab qa.yaml -d qa.jsonl -s exact:answer --runs 5 --json

  ca-actors ab qa.yaml -i question="What is NATS?" --judge mock
"""


def register(app: typer.Typer) -> None:
    """Add the `eval` and `ab` commands to `app`."""
    app.command(name="eval", help=EVAL_HELP)(eval_command)
    app.command(name="ab", help=AB_HELP)(ab_command)


def eval_command(
    file: Annotated[Path, typer.Argument(help="The flow file to evaluate.")],
    dataset: Dataset = None,
    scorers: Scorers = None,
    judge: Judge = None,
    llm: Llm = None,
    mock_script: MockScript = None,
    experiment: Experiment = None,
    mlflow_uri: MlflowUri = None,
    data_dir: DataDir = Path(".ca-actors"),
    concurrency: Concurrency = 4,
    timeout: Timeout = None,
    as_json: AsJson = False,
    log_level: LogLevel = "warning",
) -> None:
    """Run FILE over a dataset and log an MLflow evaluation."""
    configure_logging(log_level, "auto")
    if dataset is None:
        _fail("--dataset is required: a JSONL file of examples")
    if mock_script is not None and llm is None:
        llm = "mock"
    settings = _settings(data_dir, llm, mock_script, experiment, mlflow_uri)
    plan = _plan(file, settings)
    ab = plan.spec.config.ab_test
    specs = split_scorers(scorers) if scorers else list(ab.scorers if ab else [])
    base = Path.cwd() if scorers else Path(plan.file).parent
    try:
        examples = load_dataset(dataset, plan.spec)
        graders = _scorers(plan, specs, judge, base)
        check_expectations(graders, examples, str(dataset))
        report = asyncio.run(
            evaluate_plan(settings, plan, examples, graders, concurrency=concurrency, timeout_s=timeout)
        )
    except (EvalError, ScorerError) as exc:
        _fail(str(exc))
    gates = check_gates(plan.spec.config.gates, report.logged.metrics)
    if as_json:
        verdict = {"gates": [g.summary() for g in gates], "deployable": deployable(gates)}
        typer.echo(json.dumps(report.summary() | verdict, indent=2, default=str))
    else:
        failed = [row for row in report.rows if row.status != "succeeded"]
        typer.echo(f"evaluated {plan.flow} on {len(report.rows)} example(s): MLflow run {report.logged.run_id}")
        typer.echo(f"  experiment '{report.experiment}' at {settings.mlflow_uri()}")
        for name, value in sorted(report.logged.metrics.items()):
            typer.echo(f"  {name:24} {value:.6g}")
        for row in failed:
            typer.echo(f"  line {row.example.line}: {row.status}: {row.error or ''}".rstrip())
        _print_gates(gates, "gates")
        if not deployable(gates):
            typer.echo("not deployable: a BLOCK_DEPLOY gate failed")
    raise typer.Exit(1 if any(g.blocking for g in gates) else 0)


def ab_command(
    file: Annotated[Path, typer.Argument(help="A flow file with config.ab_test.")],
    dataset: Dataset = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="An input as key=value (repeatable).")
    ] = None,
    input_json: Annotated[str | None, typer.Option("--input-json", help="All inputs as one JSON object.")] = None,
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, help="Runs per variant and example (default: ab_test.run_count).")
    ] = None,
    parallel: Annotated[
        bool | None,
        typer.Option("--parallel/--sequential", help="Run the variants at once (default: ab_test.parallel)."),
    ] = None,
    scorers: Scorers = None,
    judge: Judge = None,
    llm: Llm = None,
    mock_script: MockScript = None,
    experiment: Experiment = None,
    mlflow_uri: MlflowUri = None,
    data_dir: DataDir = Path(".ca-actors"),
    concurrency: Concurrency = 4,
    timeout: Timeout = None,
    as_json: AsJson = False,
    log_level: LogLevel = "warning",
) -> None:
    """Run the A/B test of FILE and print the comparison."""
    configure_logging(log_level, "auto")
    # Without --llm, a mock script serves the variants' own mock models (mock, mock/50ms, ...).
    settings = _settings(data_dir, llm, mock_script, None, mlflow_uri)
    plan = _plan(file, settings)
    ab = plan.spec.config.ab_test
    if ab is None:
        _fail(f"{file} has no config.ab_test (see docs/evaluation.md)")
    if parallel is not None:
        ab = ab.model_copy(update={"parallel": parallel})
    flow_dir = Path(plan.file).parent
    specs = split_scorers(scorers) if scorers else list(ab.scorers)
    try:
        given = parse_inputs(inputs, input_json)
        source = dataset or (flow_dir / ab.dataset if ab.dataset and not given else None)
        if source is not None:
            examples = load_dataset(source, plan.spec)
        else:
            check_inputs(plan.spec, given or ab.inputs)
            examples = [Example(inputs=given or dict(ab.inputs))]
        graders = _scorers(plan, specs, judge, Path.cwd() if scorers else flow_dir)
        check_expectations(graders, examples, str(source or ""))
        report = asyncio.run(
            run_ab(
                settings,
                plan,
                ab,
                examples,
                graders,
                experiment=experiment,
                run_count=runs,
                concurrency=concurrency,
                timeout_s=timeout,
            )
        )
    except (EvalError, ScorerError) as exc:
        _fail(str(exc))
    gates = check_gates(plan.spec.config.gates, report.winner_metrics())
    if as_json:
        verdict = {"gates": [g.summary() for g in gates], "deployable": deployable(gates)}
        typer.echo(json.dumps(report.summary() | verdict, indent=2, default=str))
    else:
        repeat = runs or ab.run_count
        typer.echo(
            f"A/B test of {plan.flow}: {len(ab.variants)} variants × {len(examples)} example(s) × {repeat} run(s), "
            f"experiment '{report.experiment}' at {settings.mlflow_uri()}"
        )
        typer.echo(comparison_table({r.variant.name: r.metrics for r in report.results}, report.winner))
        typer.echo(f"winner: {report.winner}")
        for r in report.results:
            typer.echo(f"  MLflow run {r.logged.run_id if r.logged else '-'}: {r.variant.name}")
        _print_gates(gates, f"gates (on the winner, {report.winner})")
        if not deployable(gates):
            typer.echo("not deployable: a BLOCK_DEPLOY gate failed")
    raise typer.Exit(1 if any(g.blocking for g in gates) else 0)


def _plan(file: Path, settings: Settings) -> Plan:
    return load_plan(file, mlflow_uri=settings.mlflow_uri())


def _settings(
    data_dir: Path, llm: str | None, mock_script: Path | None, experiment: str | None, mlflow_uri: str | None
) -> Settings:
    return Settings.from_env(
        data_dir=data_dir,
        llm_override=llm,
        mock_script=mock_script,
        mlflow_experiment=experiment,
        mlflow_tracking_uri=mlflow_uri,
    )


def _scorers(plan: Plan, specs: Sequence[str], judge: str | None, base_dir: Path) -> list[AnyScorer]:
    return parse_scorers(specs, judge_model=judge, state_fields=plan.spec.state.fields, base_dir=base_dir)


def _print_gates(gates: Sequence[GateResult], title: str) -> None:
    if not gates:
        return
    typer.echo(f"{title}:")
    for gate in gates:
        typer.echo(f"  {gate.line()}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
