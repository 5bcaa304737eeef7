"""Hypothesis strategies for valid flows: a chain of segments from START to END, with trigger inputs.

A generated flow is 1–6 **segments** in a row; each segment has a head node `s<k>` that the previous
segment's exits lead to, and its own exits lead to the next head (or END after the last segment):

- ``plain``: one node;
- ``route``: a node whose ``routes:`` (2–3 conditions + default) read an int/bool/str/list field written
  earlier, by the node itself or given as input, towards fresh nodes (or straight on), all re-converging
  on the next head; non-default routes sometimes carry a (harmless) ``max_iterations``;
- ``loop``: a node repeated by a ``loop`` edge (max_iterations 1–4) until the bool it writes is true; it
  also appends to a trail it reads back, so its prompt (and with it the mock's bool) changes per turn;
- ``map``: a map node over a ``list[str]`` field (an input, or a list an earlier map collected), as a
  ``foreach`` or behind a ``parallel`` edge, with an optional ``max_concurrency`` 1–3;
- ``fanout``: a node fanning out to 2–3 branches of one or two nodes that join at the next head (or end
  at END), writing distinct fields or one shared field with a reducer (append, extend, sum, max, min);
- ``cycle``: two nodes ``a → b`` where ``b`` routes back to ``a`` under a route with ``max_iterations``.

Prompts quote fields written earlier, so any difference in state between engines changes later mock
outputs (the mock model answers a deterministic function of node id and rendered prompt) and shows up
in the final state. Every text is valid for `configs.load_flow_text`; ``tests/test_differential.py``
checks that on a few hundred examples.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import yaml
from hypothesis import strategies as st

from configs import END, START

SegmentKind = Literal["plain", "route", "loop", "map", "fanout", "cycle"]
SEGMENT_KINDS: tuple[SegmentKind, ...] = ("plain", "route", "loop", "map", "fanout", "cycle")

# Trigger inputs every generated flow declares (all required).
INPUT_TYPES: dict[str, str] = {
    "topic": "str",
    "count": "int",
    "flag": "bool",
    "words": "list[str]",
    "tags": "list[str]",
}
# Fields with a reducer that any node may also write (output type in the second place).
SHARED: dict[str, tuple[str, str, str]] = {
    "log": ("list[str]", "append", "str"),
    "total": ("int", "sum", "int"),
    "best": ("int", "max", "int"),
}
# Reducers of a fan-out's shared field: (field type, reducer, output type).
FAN_REDUCERS: tuple[tuple[str, str, str], ...] = (
    ("list[str]", "append", "str"),
    ("list[str]", "extend", "list[str]"),
    ("int", "sum", "int"),
    ("int", "max", "int"),
    ("int", "min", "int"),
)
_DEFAULTS: dict[str, Any] = {"str": "", "int": 0, "bool": False, "list[str]": []}
_CHARS = "0123456789abcdef" + "tuvwxyz"
_WORD = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5)


@dataclass(frozen=True)
class GeneratedFlow:
    """One generated flow (as the dict that is dumped to YAML), its inputs, and its segment kinds."""

    name: str
    kinds: tuple[SegmentKind, ...]
    body: dict[str, Any] = field(repr=False)
    inputs: dict[str, Any]

    @property
    def text(self) -> str:
        """The flow as YAML text."""
        doc = {"schema_version": "1.0", "flow": {"name": self.name}, **self.body}
        return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, default_flow_style=None)

    def named(self, name: str) -> GeneratedFlow:
        """The same flow under another name (each run on a shared stack needs its own flow name)."""
        return replace(self, name=name)


class _Dumper(yaml.SafeDumper):
    """Plain YAML without anchors and aliases (equal defaults would otherwise become `&id001`)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Builder:
    """Collects state fields, nodes and edges while segments are drawn."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.fields: dict[str, dict[str, Any]] = {}
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        # Fields a later prompt or condition may read, by type (inputs first).
        self.readable: dict[str, list[str]] = {"str": [], "int": [], "bool": [], "list[str]": []}
        for name, kind in INPUT_TYPES.items():
            self.fields[name] = {"type": kind, "required": True}
            self.readable[kind].append(name)
        for name, (kind, reducer, _) in SHARED.items():
            self.fields[name] = {"type": kind, "default": _DEFAULTS[kind], "reducer": reducer}

    # --- pieces ------------------------------------------------------------------------------------

    def declare(self, name: str, kind: str, reducer: str | None = None) -> str:
        spec: dict[str, Any] = {"type": kind, "default": _DEFAULTS[kind]}
        if reducer is not None:
            spec["reducer"] = reducer
        self.fields[name] = spec
        return name

    def publish(self, *names: str) -> None:
        """Make fields readable by later segments."""
        for name in names:
            kind = self.fields[name]["type"]
            if kind in self.readable and name not in self.readable[kind]:
                self.readable[kind].append(name)

    def quote(self, count: int) -> str:
        """1 to `count` placeholders of readable fields (drawn)."""
        names = [n for names in self.readable.values() for n in names]
        picked = self.draw(st.lists(st.sampled_from(names), min_size=1, max_size=count, unique=True))
        return " and ".join(f"{{state.{n}}}" for n in picked)

    def node(self, node_id: str, prompt: str, outputs: dict[str, str], **extra: Any) -> None:
        """A node writing `outputs` (state field -> output type)."""
        self.nodes.append(
            {
                "id": node_id,
                "prompt": prompt,
                "outputs": list(outputs),
                "output_schema": {"type": "object", "fields": [{"name": n, "type": t} for n, t in outputs.items()]},
                **extra,
            }
        )

    def plain_outputs(self, prefix: str) -> dict[str, str]:
        """Own fields (text/num/ok, at least one) plus maybe shared reducer fields; declared, not yet readable."""
        own = self.draw(st.lists(st.sampled_from(["text", "num", "ok"]), min_size=1, max_size=3, unique=True))
        kinds = {"text": "str", "num": "int", "ok": "bool"}
        outputs = {self.declare(f"{prefix}_{o}", kinds[o]): kinds[o] for o in own}
        for name in self.draw(st.lists(st.sampled_from(list(SHARED)), max_size=2, unique=True)):
            outputs[name] = SHARED[name][2]
        return outputs

    def condition(self) -> str:
        """A route condition over a readable field (sometimes two, joined by and/or)."""
        parts = [self._atom() for _ in range(self.draw(st.integers(1, 2)))]
        return f" {self.draw(st.sampled_from(['and', 'or']))} ".join(parts)

    def _atom(self) -> str:
        kind = self.draw(st.sampled_from([k for k, names in self.readable.items() if names]))
        name = f"state.{self.draw(st.sampled_from(self.readable[kind]))}"
        if kind == "int":
            c = self.draw(st.integers(0, 100))
            return self.draw(st.sampled_from([f"{name} >= {c}", f"{name} < {c}", f"{name} % 2 == 0", f"{name} == {c}"]))
        if kind == "bool":
            return self.draw(st.sampled_from([name, f"not {name}", f"{name} == true"]))
        if kind == "str":
            ch = self.draw(st.sampled_from(_CHARS))
            n = self.draw(st.integers(0, 12))
            return self.draw(st.sampled_from([f"'{ch}' in {name}", f"{name}.startswith('{ch}')", f"len({name}) > {n}"]))
        n = self.draw(st.integers(0, 3))
        ch = self.draw(st.sampled_from(_CHARS))
        return self.draw(st.sampled_from([f"len({name}) > {n}", f"'{ch}' in {name}"]))

    # --- segments ----------------------------------------------------------------------------------

    def segment(self, k: int, kind: SegmentKind, after: str) -> None:
        """Segment `k` with head node ``s<k>``; its exits lead to `after` (the next head, or END)."""
        build = {
            "plain": self._plain,
            "route": self._route,
            "loop": self._loop,
            "map": self._map,
            "fanout": self._fanout,
            "cycle": self._cycle,
        }[kind]
        build(k, f"s{k}", after)

    def _plain(self, k: int, head: str, after: str) -> None:
        outputs = self.plain_outputs(head)
        self.node(head, f"Plain step {k} on {self.quote(2)}", outputs)
        self.edges.append({"from": head, "to": after})
        self.publish(*outputs)

    def _route(self, k: int, head: str, after: str) -> None:
        outputs = self.plain_outputs(head)
        self.node(head, f"Decide step {k} on {self.quote(2)}", outputs)
        self.publish(*outputs)  # conditions read the state after the node
        pick = self.declare(f"{head}_pick", "str")
        count = self.draw(st.integers(2, 3))
        routes: list[dict[str, Any]] = []
        for j in range(count + 1):
            target = self._route_target(head, j, pick, after)
            if j == count:
                routes.append({"condition": {"logic": "default"}, "to": target})
                continue
            route: dict[str, Any] = {"condition": {"logic": self.condition()}, "to": target}
            if self.draw(st.integers(0, 3)) == 0:
                route["max_iterations"] = self.draw(st.integers(1, 3))
            routes.append(route)
        self.edges.append({"from": head, "routes": routes})
        self.publish(pick)

    def _route_target(self, head: str, j: int, pick: str, after: str) -> str:
        if self.draw(st.integers(0, 3)) == 0:
            return after
        node_id = f"{head}_r{j}"
        outputs = {pick: "str"}
        if self.draw(st.booleans()):
            outputs["log"] = "str"
        self.node(node_id, f"Route {j} taken after {self.quote(1)}", outputs)
        self.edges.append({"from": node_id, "to": after})
        return node_id

    def _loop(self, k: int, head: str, after: str) -> None:
        done = self.declare(f"{head}_done", "bool")
        trail = self.declare(f"{head}_trail", "list[str]", "append")
        outputs = {done: "bool", trail: "str"}
        if self.draw(st.booleans()):
            outputs["total"] = "int"
        self.node(head, f"Loop step {k} so far {{state.{trail}}} on {self.quote(1)}", outputs)
        loop = {"max_iterations": self.draw(st.integers(1, 4)), "condition_field": done, "exit_to": after}
        self.edges.append({"from": head, "loop": loop})
        self.publish(done, trail)

    def _map(self, k: int, head: str, after: str) -> None:
        items = self.draw(st.sampled_from(self.readable["list[str]"]))
        collect = self.declare(f"{head}_all", "list[str]")
        one = self.declare(f"{head}_one", "str")
        limit = self.draw(st.one_of(st.none(), st.integers(1, 3)))
        via_parallel = self.draw(st.booleans())
        where = self.quote(1)
        if via_parallel:
            feed = self.plain_outputs(head)
            self.node(head, f"Prepare map {k} on {self.quote(1)}", feed)
            target = f"{head}_map"
            parallel: dict[str, Any] = {"items_field": items, "target_node": target, "collect_field": collect}
            if limit is not None:
                parallel["max_concurrency"] = limit
            self.edges.append({"from": head, "parallel": parallel})
            self.node(target, f"Map {k}: item {{item}} (#{{index}}) for {where}", {one: "str"})
            self.edges.append({"from": target, "to": after})
            self.publish(*feed)
        else:
            name = self.draw(st.sampled_from(["item", "word", "entry"]))
            foreach: dict[str, Any] = {"items": f"state.{items}", "collect": collect}
            if name != "item":
                foreach["as"] = name
            if limit is not None:
                foreach["max_concurrency"] = limit
            self.node(head, f"Map {k}: {{{name}}} (#{{index}}) for {where}", {one: "str"}, foreach=foreach)
            self.edges.append({"from": head, "to": after})
        self.publish(collect)

    def _fanout(self, k: int, head: str, after: str) -> None:
        outputs = self.plain_outputs(head)
        self.node(head, f"Fan out {k} on {self.quote(2)}", outputs)
        self.publish(*outputs)
        shared: tuple[str, str] | None = None
        if self.draw(st.booleans()):
            kind, reducer, out = self.draw(st.sampled_from(FAN_REDUCERS))
            shared = (self.declare(f"{head}_acc", kind, reducer), out)
        branches = self.draw(st.integers(2, 3))
        firsts: list[str] = []
        written: list[str] = []
        for b in range(branches):
            first = f"{head}_b{b}"
            text = self.declare(f"{first}_text", "str")
            outs = {text: "str"}
            if shared is not None and self.draw(st.booleans()):
                outs[shared[0]] = shared[1]
            if self.draw(st.integers(0, 3)) == 0:
                outs["total"] = "int"
            self.node(first, f"Branch {b} of {k} on {self.quote(1)}", outs)
            firsts.append(first)
            written.append(text)
            last = first
            if self.draw(st.booleans()):
                last = f"{first}x"
                more = self.declare(f"{first}_more", "str")
                outs2 = {more: "str"}
                if shared is not None and self.draw(st.booleans()):
                    outs2[shared[0]] = shared[1]
                self.node(last, f"Branch {b} again after {{state.{text}}}", outs2)
                self.edges.append({"from": first, "to": last})
                written.append(more)
            self.edges.append({"from": last, "to": after})
        self.edges.append({"from": head, "to": firsts})
        self.publish(*written, *([shared[0]] if shared else []))

    def _cycle(self, k: int, head: str, after: str) -> None:
        n = self.declare(f"{head}_n", "int", "sum")
        outputs = {n: "int", **({"log": "str"} if self.draw(st.booleans()) else {})}
        self.node(head, f"Cycle {k} at {{state.{n}}} on {self.quote(1)}", outputs)
        judge = f"{head}_judge"
        verdict = self.declare(f"{judge}_ok", "bool")
        self.node(judge, f"Judge cycle {k} at {{state.{n}}}", {verdict: "bool"})
        self.edges.append({"from": head, "to": judge})
        self.publish(n, verdict)
        logic = self.draw(
            st.sampled_from(
                [f"not state.{verdict}", f"state.{n} < {self.draw(st.integers(0, 250))}", f"state.{verdict}"]
            )
        )
        back = {"condition": {"logic": logic}, "to": head, "max_iterations": self.draw(st.integers(1, 3))}
        self.edges.append({"from": judge, "routes": [back, {"condition": {"logic": "default"}, "to": after}]})

    def body(self) -> dict[str, Any]:
        return {"state": {"fields": self.fields}, "nodes": self.nodes, "edges": self.edges}


def flow_inputs() -> st.SearchStrategy[dict[str, Any]]:
    """Trigger inputs for the fields of `INPUT_TYPES`."""
    return st.fixed_dictionaries(
        {
            "topic": st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=10),
            "count": st.integers(0, 100),
            "flag": st.booleans(),
            "words": st.lists(_WORD, max_size=4),
            "tags": st.lists(_WORD, max_size=4),
        }
    )


@st.composite
def generated_flows(draw: st.DrawFn, *, max_segments: int = 6, name: str = "gen") -> GeneratedFlow:
    """A valid flow of 1–`max_segments` segments from START to END, with inputs for it."""
    # The length is drawn first so that it spreads over 1..max_segments instead of favouring short lists.
    size = draw(st.integers(1, max_segments))
    kinds: list[SegmentKind] = draw(st.lists(st.sampled_from(SEGMENT_KINDS), min_size=size, max_size=size))
    builder = _Builder(draw)
    builder.edges.append({"from": START, "to": "s0"})
    for k, kind in enumerate(kinds):
        builder.segment(k, kind, f"s{k + 1}" if k + 1 < len(kinds) else END)
    return GeneratedFlow(name=name, kinds=tuple(kinds), body=builder.body(), inputs=draw(flow_inputs()))
