"""A flow's graph as SVG, laid out here from the plan: layers by depth from START, loops as back-edges.

Pure: a `FlowSpec` in, a `Layout` (boxes and edges with coordinates) out, drawn by the
``graph.svg.html`` template. Every node box carries ``data-node`` and every edge ``data-edge``
(``from>to``), so the page colours live status and the path taken without redrawing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from configs import END, START, FlowSpec

BOX_W = 150
BOX_H = 38
GAP_X = 40
GAP_Y = 56
MARGIN = 24
SIDE = 150


@dataclass(frozen=True)
class Box:
    node: str
    label: str
    kind: str  # "start", "end", "node", "map"
    x: float
    y: float


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    kind: str  # "to", "route", "loop", "parallel", "fanout"
    back: bool
    path: str
    label_x: float
    label_y: float
    anchor: str = "start"  # of the label: "end" for an edge drawn on the left


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    boxes: list[Box]
    edges: list[Edge]


def _edges_of(spec: FlowSpec) -> list[tuple[str, str, str, str]]:
    """(source, target, label, kind) for every edge of the flow, in file order."""
    found: list[tuple[str, str, str, str]] = []
    for edge in spec.edges:
        if edge.to is not None:
            targets = [edge.to] if isinstance(edge.to, str) else list(edge.to)
            kind = "fanout" if len(targets) > 1 else "to"
            found += [(edge.from_, t, "", kind) for t in targets]
        elif edge.routes is not None:
            for route in edge.routes:
                found.append((edge.from_, route.to, _clip(route.condition.logic), "route"))
        elif edge.loop is not None:
            loop = edge.loop
            found.append((edge.from_, edge.from_, f"until {loop.condition_field} (≤{loop.max_iterations})", "loop"))
            found.append((edge.from_, loop.exit_to, "", "to"))
        elif edge.parallel is not None:
            found.append((edge.from_, edge.parallel.target_node, f"each {edge.parallel.items_field}", "parallel"))
    return found


def _clip(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _back_edges(nodes: list[str], edges: list[tuple[str, str, str, str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle (found by a depth-first walk from START): drawn as loops."""
    succ: dict[str, list[str]] = defaultdict(list)
    for s, t, _, _ in edges:
        succ[s].append(t)
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def walk(start: str) -> None:
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, i = stack.pop()
            if i < len(succ[node]):
                stack.append((node, i + 1))
                nxt = succ[node][i]
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2

    for root in [START, *nodes]:
        if root not in state:
            walk(root)
    return back


def _blocked(boxes: list[Box], x: float, y_from: float, y_to: float) -> bool:
    """Whether a box stands between two layers in the column at `x`."""
    return any(abs(b.x - x) < BOX_W and y_from < b.y < y_to for b in boxes)


def layout(spec: FlowSpec) -> Layout:
    """Boxes and edges of `spec`, top to bottom."""
    nodes = [n.id for n in spec.nodes]
    edges = _edges_of(spec)
    back = _back_edges(nodes, edges)
    forward = [(s, t) for s, t, _, _ in edges if (s, t) not in back and s != t]
    # Longest path from START over the forward edges (a DAG): the layer of each node.
    depth: dict[str, int] = {START: 0}
    for _ in range(len(nodes) + 2):
        changed = False
        for s, t in forward:
            if s in depth and depth.get(t, -1) < depth[s] + 1:
                depth[t] = depth[s] + 1
                changed = True
        if not changed:
            break
    deepest = max([d for n, d in depth.items() if n != END] or [0])
    for n in nodes:
        depth.setdefault(n, deepest + 1)
    depth[END] = max(depth.get(END, 0), max(depth[n] for n in nodes) + 1 if nodes else 1)
    layers: dict[int, list[str]] = defaultdict(list)
    for n in [START, *nodes, END]:
        layers[depth[n]].append(n)
    widest = max(len(v) for v in layers.values())
    # Room for loop arcs on the right and layer-skipping edges (with their labels) on the left.
    width = MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X + 2 * SIDE
    maps = {n.id for n in spec.nodes if n.foreach is not None} | {t for _, t, _, k in edges if k == "parallel"}
    pos: dict[str, tuple[float, float]] = {}
    boxes: list[Box] = []
    for d in sorted(layers):
        row = layers[d]
        row_w = len(row) * BOX_W + (len(row) - 1) * GAP_X
        x0 = (width - row_w) / 2
        for i, n in enumerate(row):
            x, y = x0 + i * (BOX_W + GAP_X), MARGIN + d * (BOX_H + GAP_Y)
            pos[n] = (x, y)
            kind = "start" if n == START else "end" if n == END else "map" if n in maps else "node"
            boxes.append(Box(n, n, kind, x, y))
    height = MARGIN * 2 + (max(layers) + 1) * (BOX_H + GAP_Y) - GAP_Y
    drawn: list[Edge] = []
    for s, t, label, kind in edges:
        if s not in pos or t not in pos:
            continue
        sx, sy = pos[s]
        tx, ty = pos[t]
        is_back = (s, t) in back or s == t
        if s == t:
            # A loop on one node: an arc off its right side, from its top half back into its bottom half.
            x1, y1, y2 = sx + BOX_W, sy + BOX_H * 0.3, sy + BOX_H * 0.7
            path = f"M{x1:.0f},{y1:.0f} C{x1 + 46:.0f},{y1 - 22:.0f} {x1 + 46:.0f},{y2 + 22:.0f} {x1:.0f},{y2:.0f}"
            lx, ly = x1 + 40, sy - 4
        elif is_back:
            # Out of the right side of the source, round the right, into the right side of the target.
            x1, y1 = sx + BOX_W, sy + BOX_H / 2
            x2, y2 = tx + BOX_W, ty + BOX_H / 2
            bulge = 60 + 10 * abs(depth[s] - depth[t])
            c1, c2 = f"{x1 + bulge:.0f},{y1 + 20:.0f}", f"{x2 + bulge:.0f},{y2 - 20:.0f}"
            path = f"M{x1:.0f},{y1:.0f} C{c1} {c2} {x2:.0f},{y2:.0f}"
            lx, ly = max(x1, x2) + bulge * 0.75, (y1 + y2) / 2
        elif depth[t] - depth[s] > 1 and _blocked(boxes, sx, sy, ty):
            # Skipping layers past a box in the way: round its left side.
            x1, y1 = sx, sy + BOX_H / 2
            x2, y2 = tx, ty + BOX_H / 2
            bulge = 50 + 8 * (depth[t] - depth[s])
            path = (
                f"M{x1:.0f},{y1:.0f} C{x1 - bulge:.0f},{y1 + 30:.0f} {x2 - bulge:.0f},{y2 - 30:.0f} {x2:.0f},{y2:.0f}"
            )
            lx, ly = min(x1, x2) - bulge * 0.75 - 4, (y1 + y2) / 2
        else:
            x1, y1 = sx + BOX_W / 2, sy + BOX_H
            x2, y2 = tx + BOX_W / 2, ty
            mid = (y1 + y2) / 2
            path = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}"
            lx, ly = (x1 + x2) / 2 + 4, mid
        anchor = "end" if lx < sx else "start"
        drawn.append(Edge(s, t, label, kind, is_back, path, lx, ly, anchor))
    return Layout(width, height, boxes, drawn)
