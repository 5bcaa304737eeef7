"""Cost reports over stored run history (``ca-actors report costs``): pure functions from `RunHistory` to rows.

:func:`cost_report` groups LLM spend by node, model, flow or UTC day; the table, duration and number helpers
here are shared with :mod:`actors.insights.profiles` (``ca-actors report profile``).

Step records come from the observer (see ``store.RunHistory``); older records lack most timing keys, so
every key is read defensively and a missing number counts as 0. Columns are explained in docs/reports.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from store import RunHistory

GroupBy = Literal["node", "model", "flow", "day"]
GROUPS: tuple[str, ...] = get_args(GroupBy)
# The key of usage that no step (for --by node) or no model breakdown (for --by model) accounts for.
UNKNOWN = "(unknown)"
_USAGE = ("llm_calls", "tokens_in", "tokens_out", "cost_usd")

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
# Slack when comparing sums of float costs.
_EPS_USD = 1e-9


def parse_since(text: str) -> float:
    """The number of seconds in a duration such as ``7d``, ``12h``, ``30m``, ``2w`` or ``90s``.

    Raises:
        ValueError: `text` is not a number followed by one of the units s, m, h, d, w.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(
            f"cannot read {text!r} as a duration: expected a number and a unit (s, m, h, d or w), "
            "such as 7d, 12h, 30m or 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def step_number(step: Mapping[str, Any], key: str) -> float | None:
    """The finite number under `key` of a step record (or usage dict), or None when missing or not a number."""
    value = step.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def step_number_or_zero(step: Mapping[str, Any], key: str) -> float:
    """:func:`step_number`, with 0 for missing."""
    return step_number(step, key) or 0.0


def utc_day(epoch_s: float) -> str:
    """The UTC date of an epoch timestamp, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


# ---------------------------------------------------------------------------------------------- costs


@dataclass(frozen=True)
class CostRow:
    """One group of a cost report; `runs` counts the distinct runs that contributed to it."""

    key: str
    runs: int
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass(frozen=True)
class CostReport:
    """The rows of a cost report (most expensive first; by date for ``day``) and their total."""

    by: GroupBy
    since: float | None
    rows: list[CostRow]
    total: CostRow


def run_totals(run: RunHistory) -> tuple[int, int, int, float]:
    """A run's ``(llm_calls, tokens_in, tokens_out, cost_usd)``: its own fields, or the sums over its steps."""
    steps = run.steps
    calls = run.llm_calls or int(sum(step_number_or_zero(s, "llm_calls") for s in steps))
    tokens_in = run.tokens_in or int(sum(step_number_or_zero(s, "tokens_in") for s in steps))
    tokens_out = run.tokens_out or int(sum(step_number_or_zero(s, "tokens_out") for s in steps))
    cost = run.cost_usd or sum(step_number_or_zero(s, "cost_usd") for s in steps)
    return calls, tokens_in, tokens_out, cost


def _cost_items(run: RunHistory, by: GroupBy) -> Iterator[tuple[str, int, int, int, float]]:
    """``(key, calls, tokens_in, tokens_out, cost_usd)`` of one run under one grouping.

    Whatever the run's totals hold beyond its steps' (or a step beyond its ``models``) counts under
    ``(unknown)``, so a report's total is the same whichever grouping is asked for.
    """
    totals = run_totals(run)
    if by in ("flow", "day"):
        yield (run.flow if by == "flow" else utc_day(run.created_at), *totals)
        return
    seen = [0.0, 0.0, 0.0, 0.0]
    for key, numbers in _step_items(run.steps, by):
        seen = [a + b for a, b in zip(seen, numbers, strict=True)]
        yield key, int(numbers[0]), int(numbers[1]), int(numbers[2]), numbers[3]
    rest = _rest(totals, seen)
    if rest is not None:
        yield UNKNOWN, int(rest[0]), int(rest[1]), int(rest[2]), rest[3]


def _step_items(steps: Sequence[Mapping[str, Any]], by: GroupBy) -> Iterator[tuple[str, list[float]]]:
    for step in steps:
        numbers = [step_number_or_zero(step, k) for k in _USAGE]
        models = step.get("models")
        if by == "node":
            yield str(step.get("node", UNKNOWN)), numbers
        elif isinstance(models, Mapping) and models:
            seen = [0.0, 0.0, 0.0, 0.0]
            for model, usage in models.items():
                used = [
                    step_number_or_zero(usage, "calls" if k == "llm_calls" else k)
                    if isinstance(usage, Mapping)
                    else 0.0
                    for k in _USAGE
                ]
                seen = [a + b for a, b in zip(seen, used, strict=True)]
                yield str(model), used
            rest = _rest(numbers, seen)
            if rest is not None:
                yield UNKNOWN, rest
        elif any(numbers):
            yield UNKNOWN, numbers


def _rest(totals: Sequence[float], seen: Sequence[float]) -> list[float] | None:
    """What `totals` hold beyond `seen` (``calls, tokens_in, tokens_out, cost``), or None if nothing."""
    rest = [max(t - s, 0.0) for t, s in zip(totals, seen, strict=True)]
    rest[3] = rest[3] if rest[3] > _EPS_USD else 0.0
    return rest if any(rest) else None


def _since(runs: Sequence[RunHistory], since: float | None) -> list[RunHistory]:
    return [r for r in runs if since is None or r.created_at >= since]


def cost_report(runs: Sequence[RunHistory], *, by: GroupBy = "node", since: float | None = None) -> CostReport:
    """LLM calls, tokens and cost of `runs` grouped by node, model, flow or UTC day of ``created_at``.

    Args:
        runs: Run records, in any order.
        by: ``node`` and ``model`` read the step records; ``flow`` and ``day`` read each run's totals.
            Usage that the steps (or a step's ``models``) do not account for counts under ``(unknown)``.
        since: Only runs created at or after this epoch second.

    Returns:
        Rows sorted by cost, highest first (ties by key); for ``day``, by date.
    """
    groups: dict[str, tuple[set[str], list[float]]] = {}
    for run in _since(runs, since):
        for key, *numbers in _cost_items(run, by):
            run_ids, sums = groups.setdefault(key, (set(), [0.0, 0.0, 0.0, 0.0]))
            run_ids.add(run.run_id)
            for i, n in enumerate(numbers):
                sums[i] += n
    rows = [CostRow(k, len(ids), int(s[0]), int(s[1]), int(s[2]), s[3]) for k, (ids, s) in groups.items()]
    rows.sort(key=lambda r: (0.0 if by == "day" else -r.cost_usd, r.key))
    all_runs: set[str] = set().union(*(ids for ids, _ in groups.values()))
    total = CostRow(
        "total",
        len(all_runs),
        sum(r.calls for r in rows),
        sum(r.tokens_in for r in rows),
        sum(r.tokens_out for r in rows),
        sum(r.cost_usd for r in rows),
    )
    return CostReport(by, since, rows, total)


@dataclass(frozen=True)
class DailyCosts:
    """Cost per UTC day (ascending) of each group key, for a stacked bar chart."""

    by: GroupBy
    days: list[str]
    series: dict[str, list[float]]


def daily_costs(runs: Sequence[RunHistory], *, by: GroupBy = "day", since: float | None = None) -> DailyCosts:
    """Cost per UTC day, split by `by` (one series ``cost`` for ``day``); keys ordered by total cost, highest first.

    Days run from the first to the last day with a run, days without runs included (at 0).
    """
    cells: dict[str, dict[str, float]] = {}
    for run in _since(runs, since):
        day = utc_day(run.created_at)
        for key, *_, cost in _cost_items(run, by):
            row = cells.setdefault("cost" if by == "day" else key, {})
            row[day] = row.get(day, 0.0) + cost
    seen = sorted({d for row in cells.values() for d in row})
    days = []
    if seen:
        first, last = (datetime.strptime(d, "%Y-%m-%d").replace(tzinfo=UTC) for d in (seen[0], seen[-1]))
        days = [utc_day((first + timedelta(days=i)).timestamp()) for i in range((last - first).days + 1)]
    keys = sorted(cells, key=lambda k: (-sum(cells[k].values()), k))
    return DailyCosts(by, days, {k: [cells[k].get(d, 0.0) for d in days] for k in keys})


def _cost_dict(row: CostRow, by: str) -> dict[str, Any]:
    return {by: row.key, **{k: v for k, v in rounded(asdict(row)).items() if k != "key"}}


def costs_json(report: CostReport) -> str:
    """The report as a JSON object: ``by``, ``since``, ``rows`` (keyed by the group name) and ``total``."""
    doc = {
        "by": report.by,
        "since": report.since,
        "rows": [_cost_dict(r, report.by) for r in report.rows],
        "total": _cost_dict(report.total, report.by) | {report.by: None},
    }
    return json.dumps(doc, indent=2)


def costs_csv(report: CostReport) -> str:
    """The rows as CSV with a header line (no total row, so columns can be summed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report.by, "runs", "calls", "tokens_in", "tokens_out", "cost_usd"])
    for r in report.rows:
        writer.writerow([r.key, r.runs, r.calls, r.tokens_in, r.tokens_out, _round(r.cost_usd)])
    return out.getvalue()


def costs_text(report: CostReport) -> str:
    """An aligned table with a total row, for a terminal."""
    if not report.rows:
        return "no runs with recorded costs" + (f" since {when(report.since)}" if report.since else "")
    header = [report.by.upper(), "RUNS", "CALLS", "TOKENS IN", "TOKENS OUT", "COST USD"]

    def cells(r: CostRow) -> list[str]:
        return [r.key, str(r.runs), str(r.calls), f"{r.tokens_in:,}", f"{r.tokens_out:,}", f"{r.cost_usd:.6f}"]

    lines = table(header, [cells(r) for r in report.rows], footer=cells(report.total))
    if report.since is not None:
        lines.append(f"runs created since {when(report.since)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- formatting


def fmt_ms(ms: float | None) -> str:
    """``850ms``, ``1.25s``, ``2m05s`` or ``-``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f}s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, footer: Sequence[str] | None = None) -> list[str]:
    """Lines of an aligned table: the first column left-aligned, the others right-aligned (text last: left)."""
    every = [header, *rows, *([footer] if footer else [])]
    widths = [max(len(r[i]) for r in every) for i in range(len(header))]
    last_left = header[-1] == "TIMELINE"

    def line(cells: Sequence[str]) -> str:
        out = [
            c.ljust(w) if i == 0 or (last_left and i == len(cells) - 1) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    lines = [line(header), *(line(r) for r in rows)]
    if footer:
        lines += ["-" * len(line(footer)), line(footer)]
    return lines


def when(epoch_s: float | None) -> str:
    """An epoch timestamp as ``YYYY-MM-DD HH:MM:SS UTC``, or ``-``."""
    return "-" if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _round(value: float) -> float:
    return round(value, 9)


def rounded(value: Any) -> Any:
    """`value` with every float in it (through dicts and lists) rounded to 9 decimals, to drop float noise."""
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value
