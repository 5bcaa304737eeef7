"""`ca-actors report costs|profile`: cost grouping, run profiles and flow percentiles over a real SQLite store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from actors.cli.reports import report_app
from actors.insights import plots, profiles, reports
from store import RunHistory, open_store

NOW = time.time()
DAY = 86_400.0
# A whole second, so quarter-second offsets from it are exact in binary floating point.
T0 = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC


def step(
    node: str,
    *,
    queued: float | None = None,
    started: float,
    finished: float | None,
    llm_ms: float = 0.0,
    tool_ms: float = 0.0,
    after: str | None = None,
    models: dict[str, tuple[int, int, int, float]] | None = None,
    iteration: int = 0,
) -> dict[str, Any]:
    """A step record as the observer writes it; `models` maps model -> (calls, tokens in, tokens out, cost)."""
    usage = models or {}
    return {
        "step_id": f"{node}:{iteration}",
        "node": node,
        "iteration": iteration,
        "index": 0,
        "status": "succeeded" if finished is not None else "running",
        "queued_at": queued,
        "started_at": started,
        "finished_at": finished,
        "queue_ms": (started - queued) * 1000 if queued is not None else None,
        "duration_ms": (finished - started) * 1000 if finished is not None else None,
        "llm_ms": llm_ms,
        "tool_ms": tool_ms,
        "llm_calls": sum(u[0] for u in usage.values()),
        "tool_calls": 1 if tool_ms else 0,
        "tokens_in": sum(u[1] for u in usage.values()),
        "tokens_out": sum(u[2] for u in usage.values()),
        "cost_usd": sum(u[3] for u in usage.values()),
        "models": {
            m: {"calls": c, "tokens_in": i, "tokens_out": o, "cost_usd": usd, "llm_ms": llm_ms}
            for m, (c, i, o, usd) in usage.items()
        },
        "attempts": 1,
        "after": after,
        "error": None,
        "worker": "w1",
    }


def run(run_id: str, flow: str, created: float, steps: list[dict[str, Any]], **fields: Any) -> RunHistory:
    ends = [s["finished_at"] for s in steps if s.get("finished_at") is not None]
    finished = max(ends) if ends else None
    return RunHistory(
        run_id=run_id,
        flow=flow,
        status=fields.pop("status", "succeeded"),
        created_at=created,
        finished_at=finished,
        duration_ms=(finished - created) * 1000 if finished is not None else None,
        steps=steps,
        **fields,
    )


def cost_runs() -> list[RunHistory]:
    """Two `writer` runs (1 and 3 days old) and an old-format `chat` run (10 days old) with only a run total."""
    r1 = run(
        "r1",
        "writer",
        NOW - 1 * DAY,
        [
            step("plan", started=NOW - DAY, finished=NOW - DAY + 1, models={"gpt-a": (1, 100, 50, 0.25)}),
            step(
                "write",
                started=NOW - DAY + 1,
                finished=NOW - DAY + 2,
                after="plan:0",
                models={"gpt-a": (1, 200, 100, 0.5), "gpt-b": (2, 300, 150, 0.125)},
            ),
        ],
        cost_usd=0.875,
        llm_calls=4,
        tokens_in=600,
        tokens_out=300,
    )
    # No run-level usage: the report must add up the steps.
    r2 = run(
        "r2",
        "writer",
        NOW - 3 * DAY,
        [
            step("plan", started=NOW - 3 * DAY, finished=NOW - 3 * DAY + 1, models={"gpt-a": (1, 100, 50, 0.25)}),
            step("write", started=NOW - 3 * DAY + 1, finished=NOW - 3 * DAY + 2, models={"gpt-b": (1, 100, 50, 0.125)}),
        ],
    )
    old_step = {"step_id": "reply:0", "node": "reply", "iteration": 0, "index": 0, "status": "succeeded"}
    old_step |= {"started_at": NOW - 10 * DAY, "finished_at": NOW - 10 * DAY + 2, "duration_ms": 2000.0}
    r3 = run("r3", "chat", NOW - 10 * DAY, [old_step | {"attempts": 1, "error": None, "worker": "w"}], cost_usd=1.0)
    return [r1, r2, r3]


def diamond(
    run_id: str, created: float, c_s: float = 3.0, *, flow: str = "fan", old_format: bool = False
) -> RunHistory:
    """a → (b, c) → d, where c (LLM-bound) takes `c_s` seconds and b half a second.

    Walls (queue + duration): a 1250 ms, b 750 ms, c 500 + 1000·c_s ms, d 750 ms.
    """
    t = created
    c_end = t + 1.75 + c_s
    steps = [
        step("a", queued=t, started=t + 0.25, finished=t + 1.25, llm_ms=500, tool_ms=250),
        step("b", queued=t + 1.25, started=t + 1.5, finished=t + 2.0, llm_ms=250, after="a:0"),
        step("c", queued=t + 1.25, started=t + 1.75, finished=c_end, llm_ms=c_s * 1000 - 500, after="a:0"),
        step("d", queued=c_end, started=c_end + 0.25, finished=c_end + 0.75, llm_ms=250, after="c:0"),
    ]
    if old_format:
        keep = {"step_id", "node", "iteration", "index", "status", "started_at", "finished_at", "duration_ms"}
        steps = [{k: v for k, v in s.items() if k in keep} for s in steps]
    return run(run_id, flow, created, steps)


def fill(url: str, runs: list[RunHistory]) -> None:
    async def put() -> None:
        async with open_store(url) as st:
            for r in runs:
                await st.put_run(r)

    asyncio.run(put())


def load(url: str, flow: str | None = None) -> list[RunHistory]:
    async def get() -> list[RunHistory]:
        async with open_store(url) as st:
            return await st.list_runs(flow=flow, limit=1000)

    return asyncio.run(get())


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    fan = [diamond(f"f{i}", T0 + i * 60, c_s) for i, c_s in enumerate([3.0, 1.0, 2.0, 4.0])]
    fan.append(
        run(
            "f-running",
            "fan",
            T0 + 600,
            [step("a", queued=T0 + 600, started=T0 + 600, finished=None)],
            status="running",
        )
    )
    fill(
        url,
        [*cost_runs(), diamond("d1", T0, flow="diamond"), diamond("old", T0, flow="diamond", old_format=True), *fan],
    )
    return url


def rows(report: reports.CostReport) -> list[tuple[str, int, int, int, int, float]]:
    return [(r.key, r.runs, r.calls, r.tokens_in, r.tokens_out, r.cost_usd) for r in report.rows]


# ---------------------------------------------------------------------------------------------- costs


def test_costs_by_node_count_steps_and_put_usage_no_step_accounts_for_under_unknown(store_url: str) -> None:
    report = reports.cost_report(load(store_url, "writer") + load(store_url, "chat"), by="node")
    assert rows(report) == [
        ("(unknown)", 1, 0, 0, 0, 1.0),
        ("write", 2, 4, 600, 300, 0.75),
        ("plan", 2, 2, 200, 100, 0.5),
        ("reply", 1, 0, 0, 0, 0.0),
    ]
    assert (report.total.runs, report.total.calls, report.total.tokens_in, report.total.cost_usd) == (3, 6, 800, 2.25)


def test_costs_by_model_split_steps_by_their_models_breakdown(store_url: str) -> None:
    report = reports.cost_report(load(store_url, "writer") + load(store_url, "chat"), by="model")
    assert rows(report) == [
        ("(unknown)", 1, 0, 0, 0, 1.0),
        ("gpt-a", 2, 3, 400, 200, 1.0),
        ("gpt-b", 2, 3, 400, 200, 0.25),
    ]
    assert report.total.cost_usd == 2.25


def test_costs_by_flow_and_day_read_run_totals_and_the_total_does_not_depend_on_grouping(store_url: str) -> None:
    runs = load(store_url, "writer") + load(store_url, "chat")
    assert rows(reports.cost_report(runs, by="flow")) == [
        ("writer", 2, 6, 800, 400, 1.25),
        ("chat", 1, 0, 0, 0, 1.0),
    ]
    by_day = reports.cost_report(runs, by="day")
    days = [reports.utc_day(NOW - d * DAY) for d in (10, 3, 1)]
    assert rows(by_day) == [
        (days[0], 1, 0, 0, 0, 1.0),
        (days[1], 1, 2, 200, 100, 0.375),
        (days[2], 1, 4, 600, 300, 0.875),
    ]
    groupings: tuple[reports.GroupBy, ...] = ("node", "model", "flow", "day")
    totals = {reports.cost_report(runs, by=by).total for by in groupings}
    assert totals == {reports.CostRow("total", 3, 6, 800, 400, 2.25)}


def test_since_keeps_only_runs_created_within_the_window(store_url: str) -> None:
    runs = load(store_url, "writer") + load(store_url, "chat")
    report = reports.cost_report(runs, by="flow", since=NOW - reports.parse_since("5d"))
    assert rows(report) == [("writer", 2, 6, 800, 400, 1.25)]
    report = reports.cost_report(runs, by="flow", since=NOW - reports.parse_since("36h"))
    assert rows(report) == [("writer", 1, 4, 600, 300, 0.875)]


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604_800), ("12h", 43_200), ("30m", 1_800), ("2w", 1_209_600)])
def test_since_reads_durations_with_units(text: str, seconds: float) -> None:
    assert reports.parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "-1d", "1 day"])
def test_since_rejects_anything_else_with_an_example_of_what_works(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a number and a unit .* such as 7d"):
        reports.parse_since(text)


def test_cost_json_and_csv_hold_the_same_numbers_as_the_rows(store_url: str) -> None:
    report = reports.cost_report(load(store_url, "writer"), by="model")
    doc = json.loads(reports.costs_json(report))
    assert doc["by"] == "model"
    assert doc["rows"] == [
        {"model": "gpt-a", "runs": 2, "calls": 3, "tokens_in": 400, "tokens_out": 200, "cost_usd": 1.0},
        {"model": "gpt-b", "runs": 2, "calls": 3, "tokens_in": 400, "tokens_out": 200, "cost_usd": 0.25},
    ]
    assert doc["total"] == {"model": None, "runs": 2, "calls": 6, "tokens_in": 800, "tokens_out": 400, "cost_usd": 1.25}
    table = list(csv.reader(io.StringIO(reports.costs_csv(report))))
    assert table == [
        ["model", "runs", "calls", "tokens_in", "tokens_out", "cost_usd"],
        ["gpt-a", "2", "3", "400", "200", "1.0"],
        ["gpt-b", "2", "3", "400", "200", "0.25"],
    ]


def test_cost_text_is_an_aligned_table_with_a_total_row(store_url: str) -> None:
    text = reports.costs_text(reports.cost_report(load(store_url, "writer"), by="node"))
    lines = text.splitlines()
    assert lines[0].split() == ["NODE", "RUNS", "CALLS", "TOKENS", "IN", "TOKENS", "OUT", "COST", "USD"]
    assert lines[1].split() == ["write", "2", "4", "600", "300", "0.750000"]
    assert lines[-1].split() == ["total", "2", "6", "800", "400", "1.250000"]
    assert set(lines[-2]) == {"-"}
    # Right-aligned numbers end in the same column.
    assert len({len(line) for line in lines[:3]} | {len(lines[-1])}) == 1


def test_daily_costs_stack_each_group_per_day(store_url: str) -> None:
    costs = reports.daily_costs(load(store_url, "writer"), by="model")
    assert costs.days == [reports.utc_day(NOW - d * DAY) for d in (3, 2, 1)]  # the day without runs too
    assert costs.series == {"gpt-a": [0.25, 0.0, 0.75], "gpt-b": [0.125, 0.0, 0.125]}


# ---------------------------------------------------------------------------------------------- profiles


def test_profile_finds_the_critical_path_through_the_slow_branch_of_a_diamond(store_url: str) -> None:
    (d1,) = [r for r in load(store_url, "diamond") if r.run_id == "d1"]
    profile = profiles.profile_run(d1)
    assert profile.critical_path == ["a:0", "c:0", "d:0"]
    assert profile.critical_path_ms == 5500.0
    assert [s.critical for s in profile.steps] == [True, False, True, True]
    assert profile.bottleneck is not None
    b = profile.bottleneck
    assert (b.node, b.critical_ms, b.dominant) == ("c", 3500.0, "llm")
    assert b.share_pct == pytest.approx(100 * 3500 / 5500)
    a, _, c, _ = profile.steps
    assert (a.queue_ms, a.duration_ms, a.llm_ms, a.tool_ms, a.exec_ms, a.wall_ms) == (250, 1000, 500, 250, 250, 1250)
    assert (c.queue_ms, c.exec_ms, c.llm_ms, c.wall_ms, c.offset_ms) == (500, 500, 2500, 3500, 1250)
    by_node = {n.node: n for n in profile.nodes}
    assert [n.node for n in profile.nodes] == ["c", "a", "b", "d"]  # by wall time
    assert (by_node["b"].critical_ms, by_node["b"].critical_share_pct) == (0.0, 0.0)
    assert by_node["a"].critical_share_pct == pytest.approx(100 * 1250 / 5500)


def test_profile_infers_the_path_from_timestamps_when_steps_have_no_after_links(store_url: str) -> None:
    (old,) = [r for r in load(store_url, "diamond") if r.run_id == "old"]
    profile = profiles.profile_run(old)
    assert profile.critical_path == ["a:0", "c:0", "d:0"]
    assert profile.bottleneck is not None
    assert profile.bottleneck.node == "c"
    assert profile.steps[2].queue_ms == 0.0  # no queued_at in old records
    assert profile.steps[2].exec_ms == 3000.0  # no llm_ms either: all of it counts as execution


def test_profile_of_a_loop_sums_iterations_per_node_and_labels_them_on_the_path() -> None:
    t = T0
    steps = [
        step("plan", queued=t, started=t, finished=t + 1),
        step("write", queued=t + 1, started=t + 1, finished=t + 2, after="plan:0"),
        step("review", queued=t + 2, started=t + 2, finished=t + 3, after="write:0"),
        step("write", queued=t + 3, started=t + 3, finished=t + 5, after="review:0", iteration=1),
        step("review", queued=t + 5, started=t + 5, finished=t + 6, after="write:1", iteration=1),
    ]
    profile = profiles.profile_run(run("loop", "essay", t, steps))
    assert profile.critical_path == ["plan:0", "write:0", "review:0", "write:1", "review:1"]
    write = next(n for n in profile.nodes if n.node == "write")
    assert (write.steps, write.wall_ms, write.critical_share_pct) == (2, 3000.0, 50.0)
    assert profile.bottleneck == profiles.Bottleneck("write", 3000.0, 50.0, "exec")
    assert "critical path: plan → write → review → write#1 → review#1  (6.00s)" in profiles.profile_text(profile)


def test_profile_text_names_the_path_and_the_bottleneck_with_its_share(store_url: str) -> None:
    (d1,) = [r for r in load(store_url, "diamond") if r.run_id == "d1"]
    text = profiles.profile_text(profiles.profile_run(d1))
    assert "critical path: a → c → d  (5.50s)" in text
    assert "bottleneck: c, 64% of the critical path (3.50s, mostly llm)" in text
    step_c = next(line for line in text.splitlines() if line.startswith("* c "))
    assert step_c.split()[2:9] == ["succeeded", "1.25s", "500ms", "500ms", "2.50s", "0ms", "3.50s"]
    assert "|" in step_c


def test_profile_json_carries_steps_nodes_and_bottleneck(store_url: str) -> None:
    (d1,) = [r for r in load(store_url, "diamond") if r.run_id == "d1"]
    doc = json.loads(profiles.profile_json(profiles.profile_run(d1)))
    assert doc["critical_path"] == ["a:0", "c:0", "d:0"]
    assert doc["bottleneck"]["node"] == "c"
    assert doc["bottleneck"]["share_pct"] == round(100 * 3500 / 5500, 9)
    assert [s["wall_ms"] for s in doc["steps"]] == [1250, 750, 3500, 750]


def test_percentile_interpolates_between_ranks() -> None:
    assert profiles.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert profiles.percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert profiles.percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError, match="percentile"):
        profiles.percentile([], 50)


def test_flow_profile_gives_p50_and_p95_per_node_and_the_usual_bottleneck(store_url: str) -> None:
    fan = [r for r in load(store_url, "fan") if r.status != "running"]
    profile = profiles.profile_flow("fan", fan)
    assert profile.runs == 4
    by_node = {n.node: n for n in profile.nodes}
    c = by_node["c"]
    # c's walls over the four runs: 3500, 1500, 2500, 4500 ms.
    assert (c.runs, c.steps, c.wall_ms.p50) == (4, 4, 3000.0)
    assert c.wall_ms.p95 == pytest.approx(4350.0)
    assert (c.queue_ms.p50, c.queue_ms.p95) == (500.0, 500.0)
    assert c.llm_ms.p50 == 2000.0
    shares = sorted(100 * w / (w + 2000) for w in (3500, 1500, 2500, 4500))
    assert c.critical_share_pct.p50 == pytest.approx((shares[1] + shares[2]) / 2)
    assert c.bottleneck_runs == 4
    assert by_node["b"].critical_share_pct.p50 == 0.0
    assert profile.bottleneck == "c"
    assert profile.nodes[0].node == "c"
    text = profiles.flow_profile_text(profile)
    assert text.startswith("flow fan: 4 run(s)")
    assert "bottleneck: c, median" in text
    assert "(the bottleneck of 4 of 4 run(s))" in text


# ---------------------------------------------------------------------------------------------- plots


def test_plots_write_png_and_svg_files(store_url: str, tmp_path: Path) -> None:
    fan = [r for r in load(store_url, "fan") if r.status != "running"]
    png = plots.plot_profile(profiles.profile_run(fan[0]), tmp_path / "run.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plots.plot_flow_profile(profiles.profile_flow("fan", fan), tmp_path / "flow.svg")
    assert "<svg" in svg.read_text()[:500]
    costs = plots.plot_costs(reports.daily_costs(load(store_url), by="flow"), tmp_path / "sub" / "costs.png")
    assert costs.read_bytes()[:4] == b"\x89PNG"


def test_plots_refuse_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.png or \.svg"):
        plots.plot_costs(reports.DailyCosts("day", [], {}), tmp_path / "costs.pdf")
    assert not (tmp_path / "costs.pdf").exists()


def test_plots_without_matplotlib_say_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plots.PlotUnavailableError, match=r"pip install 'ca-actors\[plot\]'"):
        plots.plot_costs(reports.DailyCosts("day", [], {}), tmp_path / "costs.png")


# ---------------------------------------------------------------------------------------------- CLI

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(report_app, list(args), catch_exceptions=False)


def test_cli_costs_prints_json_and_csv_and_honours_since(store_url: str) -> None:
    result = invoke("costs", "--store", store_url, "--by", "flow", "--since", "5d", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(r["flow"], r["cost_usd"]) for r in doc["rows"]] == [("writer", 1.25)]
    result = invoke("costs", "--store", store_url, "--by", "model", "--flow", "writer", "--csv")
    assert result.stdout.splitlines() == [
        "model,runs,calls,tokens_in,tokens_out,cost_usd",
        "gpt-a,2,3,400,200,1.0",
        "gpt-b,2,3,400,200,0.25",
    ]
    text = invoke("costs", "--store", store_url, "--flow", "writer").stdout
    assert text.splitlines()[-1].split() == ["total", "2", "6", "800", "400", "1.250000"]


def test_cli_costs_rejects_a_bad_since_and_a_bad_grouping(store_url: str) -> None:
    result = invoke("costs", "--store", store_url, "--since", "7 days")
    assert result.exit_code == 2
    assert "such as 7d" in result.stderr
    result = invoke("costs", "--store", store_url, "--by", "color")
    assert result.exit_code == 2
    assert "node, model, flow, day" in result.stderr


def test_cli_costs_plot_writes_a_png(store_url: str, tmp_path: Path) -> None:
    result = invoke("costs", "--store", store_url, "--by", "day", "--plot", str(tmp_path / "x.png"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot written to {tmp_path / 'x.png'}" in result.stderr


def test_cli_profile_of_one_run_in_text_json_and_svg(store_url: str, tmp_path: Path) -> None:
    result = invoke("profile", "d1", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "bottleneck: c, 64% of the critical path" in result.stdout
    result = invoke("profile", "d1", "--store", store_url, "--json", "--plot", str(tmp_path / "x.svg"))
    assert json.loads(result.stdout)["critical_path"] == ["a:0", "c:0", "d:0"]
    assert (tmp_path / "x.svg").read_text().lstrip().startswith("<?xml")
    assert "<svg" in (tmp_path / "x.svg").read_text()


def test_cli_profile_of_a_flow_skips_running_runs_and_takes_the_last_n(store_url: str) -> None:
    result = invoke("profile", "--flow", "fan", "--store", store_url, "--last", "3", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["run_ids"] == ["f3", "f2", "f1"]
    c = next(n for n in doc["nodes"] if n["node"] == "c")
    assert c["wall_ms"] == {"p50": 2500.0, "p95": 4300.0}
    assert doc["bottleneck"] == "c"
    text = invoke("profile", "--flow", "fan", "--store", store_url).stdout
    assert text.startswith("flow fan: 4 run(s)")


def test_cli_profile_needs_a_run_or_a_flow_and_knows_unknown_runs(store_url: str) -> None:
    result = invoke("profile", "--store", store_url)
    assert result.exit_code == 2
    assert "give a RUN_ID, or --flow FLOW" in result.stderr
    result = invoke("profile", "nope", "--store", store_url)
    assert result.exit_code == 1
    assert "no run 'nope'" in result.stderr
    result = invoke("profile", "d1", "--flow", "writer", "--store", store_url)
    assert result.exit_code == 1
    assert "is a run of 'diamond'" in result.stderr
    result = invoke("profile", "--flow", "nosuch", "--store", store_url)
    assert result.exit_code == 1
    assert "no finished runs of flow 'nosuch'" in result.stderr


def test_cli_says_where_it_looked_when_there_is_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CA_STORE_URL", raising=False)
    result = invoke("costs", "--data-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert f"no run history at {(tmp_path / 'nothing' / 'store.db').resolve()}" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_cli_finds_the_store_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CA_STORE_URL", raising=False)
    fill(f"sqlite:///{tmp_path / 'store.db'}", cost_runs())
    result = invoke("costs", "--data-dir", str(tmp_path), "--by", "flow", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"]["cost_usd"] == 2.25
