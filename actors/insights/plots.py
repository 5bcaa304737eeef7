"""Charts of the reports for ``--plot FILE`` (PNG or SVG by suffix); needs the optional ``plot`` extra (matplotlib).

Figures are built with matplotlib's object API on the Agg canvas, never through pyplot's global state,
so plotting works headless and in threads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from actors.insights.profiles import COMPONENTS, FlowProfile, RunProfile
from actors.insights.reports import DailyCosts
from configs.errors import CaActorsError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = {".png": "png", ".svg": "svg"}
INSTALL_HINT = "pip install 'ca-actors[plot]'"
# Series beyond this many are summed into "other" so the legend stays readable.
MAX_SERIES = 8
_COLORS = {"queue": "#bdbdbd", "exec": "#4c72b0", "llm": "#dd8452", "tool": "#55a868"}


class PlotUnavailableError(CaActorsError, RuntimeError):
    """matplotlib is not installed."""

    def __init__(self) -> None:
        super().__init__(f"plotting needs matplotlib: {INSTALL_HINT}")


def plot_format(path: Path) -> str:
    """``png`` or ``svg`` from the suffix of `path`.

    Raises:
        ValueError: Another suffix.
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot plot to {path}: the file name must end in .png or .svg")
    return fmt


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError() from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fmt = plot_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No date in SVG metadata: the same report gives the same file.
    fig.savefig(path, format=fmt, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
    return path


def plot_costs(costs: DailyCosts, path: Path) -> Path:
    """A bar chart of cost per UTC day, stacked by node, model or flow (the top few; the rest as "other").

    Raises:
        ValueError: `path` does not end in .png or .svg.
        PlotUnavailableError: matplotlib is not installed.
    """
    plot_format(path)
    fig = _figure(min(max(6.0, 0.4 * len(costs.days) + 3), 16.0), 4.5)
    ax = fig.add_subplot()
    series = dict(list(costs.series.items())[:MAX_SERIES])
    rest = list(costs.series.values())[MAX_SERIES:]
    if rest:
        series["other"] = [sum(day) for day in zip(*rest, strict=True)]
    bottom = [0.0] * len(costs.days)
    for key, values in series.items():
        ax.bar(range(len(costs.days)), values, bottom=bottom, label=key)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    title = "LLM cost per day (UTC)" + ("" if costs.by == "day" else f" by {costs.by}")
    _decorate(ax, title, "cost (USD)")
    if not costs.days:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    if costs.by != "day" and series:
        ax.legend(fontsize="small")
    # About 30 date labels at most, so they do not overlap.
    every = max(1, math.ceil(len(costs.days) / 30))
    ax.set_xticks(range(0, len(costs.days), every), costs.days[::every], rotation=45, ha="right")
    return _save(fig, path)


def plot_profile(profile: RunProfile, path: Path) -> Path:
    """Horizontal bars per node of one run, stacked queue / exec / LLM / tool time; critical-path nodes in bold.

    Raises:
        ValueError: `path` does not end in .png or .svg.
        PlotUnavailableError: matplotlib is not installed.
    """
    plot_format(path)
    nodes = profile.nodes[::-1]
    fig = _figure(8.0, max(3.0, 0.45 * len(nodes) + 1.8))
    ax = fig.add_subplot()
    names = [n.node for n in nodes]
    left = [0.0] * len(nodes)
    for part in COMPONENTS:
        seconds = [getattr(n, f"{part}_ms") / 1000 for n in nodes]
        ax.barh(names, seconds, left=left, label=part, color=_COLORS[part])
        left = [a + b for a, b in zip(left, seconds, strict=True)]
    for tick, node in zip(ax.get_yticklabels(), nodes, strict=True):
        if node.critical_ms > 0:
            tick.set_fontweight("bold")
    title = f"{profile.flow} run {profile.run_id}"
    if profile.bottleneck is not None:
        title += f"\nbottleneck: {profile.bottleneck.node} ({profile.bottleneck.share_pct:.0f}% of the critical path)"
    _decorate(ax, title, "seconds (bold: on the critical path)", axis="x")
    ax.legend(fontsize="small", ncols=4, loc="lower right")
    return _save(fig, path)


def plot_flow_profile(profile: FlowProfile, path: Path) -> Path:
    """Bars of the p50 wall time per node over a flow's runs, with whiskers up to p95.

    Raises:
        ValueError: `path` does not end in .png or .svg.
        PlotUnavailableError: matplotlib is not installed.
    """
    plot_format(path)
    nodes = profile.nodes
    fig = _figure(max(6.0, 0.7 * len(nodes) + 2), 4.5)
    ax = fig.add_subplot()
    p50 = [n.wall_ms.p50 / 1000 for n in nodes]
    up = [max(n.wall_ms.p95 - n.wall_ms.p50, 0.0) / 1000 for n in nodes]
    colors = [_COLORS["llm"] if n.node == profile.bottleneck else _COLORS["exec"] for n in nodes]
    ax.bar([n.node for n in nodes], p50, yerr=[[0.0] * len(nodes), up], capsize=4, color=colors)
    title = f"{profile.flow}: wall time per step over {profile.runs} run(s), p50 with p95 whiskers"
    if profile.bottleneck is not None:
        title += f"\nbottleneck (orange): {profile.bottleneck}"
    _decorate(ax, title, "seconds")
    ax.tick_params(axis="x", labelrotation=30)
    return _save(fig, path)


def _decorate(ax: Axes, title: str, label: str, *, axis: Literal["x", "y"] = "y") -> None:
    ax.set_title(title, fontsize="medium")
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)
    ax.grid(axis=axis, alpha=0.3)
    ax.set_axisbelow(True)
