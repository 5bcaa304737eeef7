"""The hand-written corpus of the differential tests: flows, inputs and scripts for each construct.

Seeds, ``tests/flows`` and small inline flows (routes, bounded route cycles, loops, maps, fan-out/join
with reducers, ``on_error``, failures). Used by `tests/test_differential.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tests.conftest import ROOT, SEEDS

FLOWS = ROOT / "tests" / "flows"
Status = Literal["succeeded", "failed", "rejected"]


@dataclass(frozen=True)
class Case:
    """One flow of the corpus with its inputs, mock script and model, and what it is meant to show."""

    id: str
    flow: str
    inputs: dict[str, Any]
    script: dict[str, list[Any]] | None = None
    model: str = "mock"
    status: Status = "succeeded"
    on_error: bool = False
    expect: dict[str, Any] = field(default_factory=dict)  # a few state fields, checked on both engines


def seed(name: str) -> str:
    return (SEEDS / f"{name}.yaml").read_text()


def out(*fields: str) -> str:
    """An `output_schema` in flow style: `name:type` pairs."""
    pairs = (f.split(":") for f in fields)
    return "{type: object, fields: [" + ", ".join(f"{{name: {n}, type: '{t}'}}" for n, t in pairs) + "]}"


ROUTE_INT = f"""
schema_version: "1.0"
flow: {{name: route_int}}
state:
  fields:
    n: {{type: int, required: true}}
    note: {{type: str, default: ""}}
    size: {{type: str, default: ""}}
nodes:
  - {{id: measure, prompt: "Measure {{state.n}}", outputs: [note], output_schema: {out("note:str")}}}
  - {{id: big, prompt: "Big {{state.n}} after {{state.note}}", outputs: [size], output_schema: {out("size:str")}}}
  - {{id: medium, prompt: "Medium {{state.n}}", outputs: [size], output_schema: {out("size:str")}}}
  - {{id: small, prompt: "Small {{state.n}}", outputs: [size], output_schema: {out("size:str")}}}
  - {{id: report, prompt: "Report {{state.size}}", outputs: [note], output_schema: {out("note:str")}}}
edges:
  - {{from: START, to: measure}}
  - from: measure
    routes:
      - {{condition: {{logic: "state.n >= 10"}}, to: big}}
      - {{condition: {{logic: "state.n >= 5 and state.n < 10"}}, to: medium}}
      - {{condition: {{logic: default}}, to: small}}
  - {{from: big, to: report}}
  - {{from: medium, to: report}}
  - {{from: small, to: report}}
  - {{from: report, to: END}}
"""

ROUTE_STR = f"""
schema_version: "1.0"
flow: {{name: route_str}}
state:
  fields:
    answer: {{type: str, required: true}}
    verdict: {{type: str, default: ""}}
    outcome: {{type: str, default: ""}}
nodes:
  - {{id: judge, prompt: "Judge {{state.answer}}", outputs: [verdict], output_schema: {out("verdict:str")}}}
  - {{id: accept, prompt: "Accept {{state.verdict}}", outputs: [outcome], output_schema: {out("outcome:str")}}}
  - {{id: ponder, prompt: "Ponder {{state.verdict}}", outputs: [outcome], output_schema: {out("outcome:str")}}}
  - {{id: reject, prompt: "Reject {{state.verdict}}", outputs: [outcome], output_schema: {out("outcome:str")}}}
edges:
  - {{from: START, to: judge}}
  - from: judge
    routes:
      - {{condition: {{logic: "state.verdict == 'yes'"}}, to: accept}}
      - {{condition: {{logic: "state.verdict.startswith('may')"}}, to: ponder}}
      - {{condition: {{logic: default}}, to: reject}}
  - {{from: accept, to: END}}
  - {{from: ponder, to: END}}
  - {{from: reject, to: END}}
"""

ROUTE_CYCLE = f"""
schema_version: "1.0"
flow: {{name: cycle}}
state:
  fields:
    n: {{type: int, default: 0, reducer: sum}}
    verdict: {{type: str, default: ""}}
nodes:
  - {{id: a, prompt: "Add one to {{n}}", outputs: [n], output_schema: {out("n:int")}}}
  - {{id: b, prompt: "Judge {{n}}", outputs: [verdict], output_schema: {out("verdict:str")}}}
edges:
  - {{from: START, to: a}}
  - {{from: a, to: b}}
  - from: b
    routes:
      - {{condition: {{logic: "state.n < 100 and not state.verdict.startswith('stop')"}}, to: a, max_iterations: 2}}
      - {{condition: {{logic: default}}, to: END}}
"""

LOOP_NEVER_TRUE = f"""
schema_version: "1.0"
flow: {{name: forever}}
state:
  fields:
    topic: {{type: str, required: true}}
    done: {{type: bool, default: false}}
    tries: {{type: int, default: 0, reducer: sum}}
    after: {{type: str, default: ""}}
nodes:
  - {{id: work, prompt: "Try {{topic}} ({{state.tries}})", outputs: [done, tries],
     output_schema: {out("done:bool", "tries:int")}}}
  - {{id: wrap, prompt: "Wrap up {{state.tries}}", outputs: [after], output_schema: {out("after:str")}}}
edges:
  - {{from: START, to: work}}
  - from: work
    loop: {{max_iterations: 4, condition_field: done, exit_to: wrap}}
  - {{from: wrap, to: END}}
"""

MAP_PARALLEL = f"""
schema_version: "1.0"
flow: {{name: map_parallel}}
state:
  fields:
    xs: {{type: "list[str]", required: true}}
    got: {{type: "list[dict]", default: []}}
    label: {{type: str, default: ""}}
    size: {{type: int, default: 0}}
    summary: {{type: str, default: ""}}
nodes:
  - {{id: feed, prompt: "Prepare {{state.xs}}", outputs: [label], output_schema: {out("label:str")}}}
  - {{id: each, prompt: "Do {{item}} #{{index}} for {{state.label}}", outputs: [label, size],
     output_schema: {out("label:str", "size:int")}}}
  - {{id: summary, prompt: "Sum up {{state.got}}", outputs: [summary], output_schema: {out("summary:str")}}}
edges:
  - {{from: START, to: feed}}
  - from: feed
    parallel: {{items_field: xs, target_node: each, collect_field: got, max_concurrency: 2}}
  - {{from: each, to: summary}}
  - {{from: summary, to: END}}
"""

FAN_TO_END = f"""
schema_version: "1.0"
flow: {{name: fan_to_end}}
state:
  fields:
    topic: {{type: str, required: true}}
    tally: {{type: int, default: 0, reducer: sum}}
    left: {{type: str, default: ""}}
    right: {{type: str, default: ""}}
    right2: {{type: str, default: ""}}
nodes:
  - {{id: split, prompt: "Split {{topic}}", outputs: [tally], output_schema: {out("tally:int")}}}
  - {{id: left, prompt: "Left {{topic}} {{state.tally}}", outputs: [left, tally],
     output_schema: {out("left:str", "tally:int")}}}
  - {{id: right, prompt: "Right {{topic}}", outputs: [right], output_schema: {out("right:str")}}}
  - {{id: right2, prompt: "Right again {{state.right}}", outputs: [right2, tally],
     output_schema: {out("right2:str", "tally:int")}}}
edges:
  - {{from: START, to: split}}
  - {{from: split, to: [left, right]}}
  - {{from: left, to: END}}
  - {{from: right, to: right2}}
  - {{from: right2, to: END}}
"""

JOIN_REDUCERS = f"""
schema_version: "1.0"
flow: {{name: join_reducers}}
state:
  fields:
    topic: {{type: str, required: true}}
    items: {{type: "list[str]", default: [seed], reducer: append}}
    total: {{type: int, default: 10, reducer: sum}}
    peak: {{type: int, default: 8, reducer: max}}
    merged: {{type: str, default: ""}}
nodes:
  - {{id: start, prompt: "Start {{topic}}", outputs: [total], output_schema: {out("total:int")}}}
  - {{id: p, prompt: "P {{topic}} {{state.total}}", outputs: [items, total, peak],
     output_schema: {out("items:str", "total:int", "peak:int")}}}
  - {{id: q, prompt: "Q {{topic}}", outputs: [items, total, peak],
     output_schema: {out("items:str", "total:int", "peak:int")}}}
  - {{id: r, prompt: "R {{topic}}", outputs: [items, total, peak],
     output_schema: {out("items:str", "total:int", "peak:int")}}}
  - {{id: merge, prompt: "Merge {{state.items}} {{state.total}} {{state.peak}}", outputs: [merged],
     output_schema: {out("merged:str")}}}
edges:
  - {{from: START, to: start}}
  - {{from: start, to: [p, q, r]}}
  - {{from: p, to: merge}}
  - {{from: q, to: merge}}
  - {{from: r, to: merge}}
  - {{from: merge, to: END}}
"""

RISKY = f"""
schema_version: "1.0"
flow: {{name: rescue}}
state:
  fields:
    topic: {{type: str, required: true}}
    answer: {{type: int, default: 0}}
    apology: {{type: str, default: ""}}
nodes:
  - id: risky
    prompt: "Count {{topic}}"
    outputs: [answer]
    output_schema: {out("answer:int")}
    retry: {{max_attempts: 2, on: [bad_output]}}
    on_error: rescue
  - {{id: rescue, prompt: "Apologise for {{error}}", outputs: [apology], output_schema: {out("apology:str")}}}
edges:
  - {{from: START, to: risky}}
  - {{from: risky, to: END}}
  - {{from: rescue, to: END}}
"""

# Code nodes (the sandbox): typed results, templates in inputs, maps, routes on their results, failures.
SANDBOX_PIPELINE = (ROOT / "configs" / "examples" / "sandbox_pipeline.yaml").read_text()

CODE_MAP = """
schema_version: "1.0"
flow: {name: code_map}
state:
  fields:
    xs: {type: "list[int]", required: true}
    sq: {type: int, default: 0}
    squares: {type: "list[int]", default: []}
    total: {type: int, default: 0}
    size: {type: str, default: ""}
nodes:
  - {id: start, code: "result = len(inputs['xs'])", inputs: {xs: "{xs}"}, outputs: [total]}
  - id: square
    code: "result = inputs['item'] * inputs['item'] + inputs['index']"
    outputs: [sq]
    output_schema: {type: int}
  - {id: add, code: "result = sum(state['squares'])", outputs: [total], output_schema: {type: int}}
  - {id: big, prompt: "Big {state.total}", outputs: [size], output_schema: {type: str}}
  - {id: small, code: "result = 'small ' + str(inputs['t'])", inputs: {t: state.total}, outputs: [size]}
edges:
  - {from: START, to: start}
  - from: start
    parallel: {items_field: xs, target_node: square, collect_field: squares, max_concurrency: 2}
  - {from: square, to: add}
  - from: add
    routes:
      - {condition: {logic: "state.total > 20"}, to: big}
      - {condition: {logic: default}, to: small}
  - {from: big, to: END}
  - {from: small, to: END}
"""

CODE_FAILS = """
schema_version: "1.0"
flow: {name: code_fails}
state:
  fields:
    n: {type: int, default: 0}
    apology: {type: str, default: ""}
nodes:
  - id: risky
    code: "import os\\nresult = 1"
    outputs: [n]
    on_error: rescue
    sandbox: {preset: low, timeout: 5}
  - {id: rescue, code: "result = 'sorry: ' + inputs['error']", outputs: [apology]}
edges:
  - {from: START, to: risky}
  - {from: risky, to: END}
  - {from: rescue, to: END}
"""

CODE_BAD_RESULT = """
schema_version: "1.0"
flow: {name: code_bad_result}
state:
  fields:
    n: {type: int, default: 0}
nodes:
  - {id: count, code: "result = 'many'", outputs: [n], output_schema: {type: int}}
edges:
  - {from: START, to: count}
  - {from: count, to: END}
"""

# The same failing node without a rescue: the run fails.
UNRESCUED = f"""
schema_version: "1.0"
flow: {{name: unrescued}}
state:
  fields:
    topic: {{type: str, required: true}}
    answer: {{type: int, default: 0}}
    later: {{type: str, default: ""}}
nodes:
  - {{id: first, prompt: "Begin {{topic}}", outputs: [later], output_schema: {out("later:str")}}}
  - id: risky
    prompt: "Count {{topic}} after {{state.later}}"
    outputs: [answer]
    output_schema: {out("answer:int")}
    retry: {{max_attempts: 2, on: [bad_output]}}
edges:
  - {{from: START, to: first}}
  - {{from: first, to: risky}}
  - {{from: risky, to: END}}
"""

# A fan-out inside a bounded route cycle: branches and join run once per lap (iterations 0, 1, 2).
FAN_IN_CYCLE = f"""
schema_version: "1.0"
flow: {{name: fan_in_cycle}}
state:
  fields:
    topic: {{type: str, required: true}}
    laps: {{type: int, default: 0, reducer: sum}}
    seen: {{type: "list[str]", default: [], reducer: append}}
    left: {{type: str, default: ""}}
    right: {{type: str, default: ""}}
    joined: {{type: str, default: ""}}
nodes:
  - {{id: lap, prompt: "Lap {{state.laps}} of {{topic}}", outputs: [laps], output_schema: {out("laps:int")}}}
  - {{id: left, prompt: "Left {{state.laps}} {{state.right}}", outputs: [left, seen],
     output_schema: {out("left:str", "seen:str")}}}
  - {{id: right, prompt: "Right {{state.laps}} {{state.left}}", outputs: [right, seen],
     output_schema: {out("right:str", "seen:str")}}}
  - {{id: join, prompt: "Join {{state.left}} {{state.right}} {{state.seen}}", outputs: [joined],
     output_schema: {out("joined:str")}}}
edges:
  - {{from: START, to: lap}}
  - {{from: lap, to: [left, right]}}
  - {{from: left, to: join}}
  - {{from: right, to: join}}
  - from: join
    routes:
      - {{condition: {{logic: "state.laps >= 0"}}, to: lap, max_iterations: 2}}
      - {{condition: {{logic: default}}, to: END}}
"""

# A map inside a bounded route cycle: the map runs once per lap and collects twice.
MAP_IN_CYCLE = f"""
schema_version: "1.0"
flow: {{name: map_in_cycle}}
state:
  fields:
    xs: {{type: "list[str]", required: true}}
    got: {{type: "list[str]", default: []}}
    one: {{type: str, default: ""}}
    verdict: {{type: bool, default: false}}
nodes:
  - id: each
    foreach: {{items: state.xs, as: x, max_concurrency: 2, collect: got}}
    prompt: "Do {{x}} #{{index}} having {{state.got}}"
    outputs: [one]
    output_schema: {out("one:str")}
  - {{id: check, prompt: "Check {{state.got}}", outputs: [verdict], output_schema: {out("verdict:bool")}}}
edges:
  - {{from: START, to: each}}
  - {{from: each, to: check}}
  - from: check
    routes:
      - {{condition: {{logic: "len(state.got) < 100"}}, to: each, max_iterations: 1}}
      - {{condition: {{logic: default}}, to: END}}
"""

# A map node repeated by a loop edge: its outputs are never written, so the loop runs to its bound.
MAP_LOOP = f"""
schema_version: "1.0"
flow: {{name: map_loop}}
state:
  fields:
    xs: {{type: "list[str]", required: true}}
    got: {{type: "list[str]", default: []}}
    one: {{type: str, default: ""}}
    done: {{type: bool, default: false}}
nodes:
  - id: each
    foreach: {{items: state.xs, collect: got}}
    prompt: "Do {{item}} #{{index}} having {{state.got}}"
    outputs: [one]
    output_schema: {out("one:str")}
edges:
  - {{from: START, to: each}}
  - from: each
    loop: {{max_iterations: 3, condition_field: done, exit_to: END}}
"""

# A join that repeats itself with a loop edge; its loop turns may not wait for the branches again.
JOIN_LOOP = f"""
schema_version: "1.0"
flow: {{name: join_loop}}
state:
  fields:
    topic: {{type: str, required: true}}
    a: {{type: str, default: ""}}
    b: {{type: str, default: ""}}
    done: {{type: bool, default: false}}
    trail: {{type: "list[str]", default: [], reducer: append}}
nodes:
  - {{id: split, prompt: "Split {{topic}}", outputs: [trail], output_schema: {out("trail:str")}}}
  - {{id: a, prompt: "A {{topic}} {{state.b}}", outputs: [a], output_schema: {out("a:str")}}}
  - {{id: b, prompt: "B {{topic}} {{state.a}}", outputs: [b], output_schema: {out("b:str")}}}
  - {{id: join, prompt: "Join {{state.a}} {{state.b}} {{state.trail}}", outputs: [done, trail],
     output_schema: {out("done:bool", "trail:str")}}}
edges:
  - {{from: START, to: split}}
  - {{from: split, to: [a, b]}}
  - {{from: a, to: join}}
  - {{from: b, to: join}}
  - from: join
    loop: {{max_iterations: 3, condition_field: done, exit_to: END}}
"""

# Reducers extend, min and merge at a join (append, sum and max are in JOIN_REDUCERS).
JOIN_MORE_REDUCERS = f"""
schema_version: "1.0"
flow: {{name: join_more_reducers}}
state:
  fields:
    topic: {{type: str, required: true}}
    words: {{type: "list[str]", default: [w], reducer: extend}}
    low: {{type: int, default: 50, reducer: min}}
    meta: {{type: dict, default: {{k: 0}}, reducer: merge}}
    merged: {{type: str, default: ""}}
nodes:
  - {{id: start, prompt: "Start {{topic}}", outputs: [low], output_schema: {out("low:int")}}}
  - {{id: p, prompt: "P {{topic}}", outputs: [words, low, meta],
     output_schema: {out("words:list[str]", "low:int", "meta:dict")}}}
  - {{id: q, prompt: "Q {{topic}}", outputs: [words, low, meta],
     output_schema: {out("words:list[str]", "low:int", "meta:dict")}}}
  - {{id: q2, prompt: "Q again {{state.words}}", outputs: [words], output_schema: {out("words:list[str]")}}}
  - {{id: merge, prompt: "Merge {{state.words}} {{state.low}} {{state.meta}}", outputs: [merged],
     output_schema: {out("merged:str")}}}
edges:
  - {{from: START, to: start}}
  - {{from: start, to: [p, q]}}
  - {{from: p, to: merge}}
  - {{from: q, to: q2}}
  - {{from: q2, to: merge}}
  - {{from: merge, to: END}}
"""

# Two bounded routes to the same node: the first is used up after one lap, then the second is taken.
ROUTES_USED_UP = f"""
schema_version: "1.0"
flow: {{name: routes_used_up}}
state:
  fields:
    n: {{type: int, default: 0, reducer: sum}}
    via: {{type: "list[str]", default: [], reducer: append}}
nodes:
  - {{id: a, prompt: "Add to {{state.n}} via {{state.via}}", outputs: [n], output_schema: {out("n:int")}}}
  - {{id: b, prompt: "Pick at {{state.n}}", outputs: [via], output_schema: {out("via:str")}}}
edges:
  - {{from: START, to: a}}
  - {{from: a, to: b}}
  - from: b
    routes:
      - {{condition: {{logic: "state.n >= 0"}}, to: a, max_iterations: 1}}
      - {{condition: {{logic: "state.n < 1000"}}, to: a, max_iterations: 2}}
      - {{condition: {{logic: default}}, to: END}}
"""

# A map item that answers badly (max_concurrency 1: later items never start), rescued by on_error.
MAP_ITEM_FAILS = f"""
schema_version: "1.0"
flow: {{name: map_item_fails}}
state:
  fields:
    xs: {{type: "list[str]", required: true}}
    got: {{type: "list[int]", default: []}}
    value: {{type: int, default: 0}}
    apology: {{type: str, default: ""}}
nodes:
  - id: parse
    foreach: {{items: state.xs, max_concurrency: 1, collect: got}}
    prompt: "Parse {{item}}"
    outputs: [value]
    output_schema: {out("value:int")}
    retry: {{max_attempts: 1}}
    on_error: rescue
  - {{id: rescue, prompt: "Apologise for {{error}} with {{state.got}}", outputs: [apology],
     output_schema: {out("apology:str")}}}
edges:
  - {{from: START, to: parse}}
  - {{from: parse, to: END}}
  - {{from: rescue, to: END}}
"""

# The same without a rescue: the run fails.
MAP_ITEM_FAILS_UNRESCUED = f"""
schema_version: "1.0"
flow: {{name: map_item_fails_unrescued}}
state:
  fields:
    xs: {{type: "list[str]", required: true}}
    got: {{type: "list[int]", default: []}}
    value: {{type: int, default: 0}}
nodes:
  - id: parse
    foreach: {{items: state.xs, max_concurrency: 1, collect: got}}
    prompt: "Parse {{item}}"
    outputs: [value]
    output_schema: {out("value:int")}
    retry: {{max_attempts: 1}}
edges:
  - {{from: START, to: parse}}
  - {{from: parse, to: END}}
"""

# A route condition that cannot be evaluated (an int compared with a str): the run fails.
BAD_CONDITION = f"""
schema_version: "1.0"
flow: {{name: bad_condition}}
state:
  fields:
    topic: {{type: str, required: true}}
    word: {{type: str, default: ""}}
    after: {{type: str, default: ""}}
nodes:
  - {{id: speak, prompt: "Say {{topic}}", outputs: [word], output_schema: {out("word:str")}}}
  - {{id: more, prompt: "More {{state.word}}", outputs: [after], output_schema: {out("after:str")}}}
edges:
  - {{from: START, to: speak}}
  - from: speak
    routes:
      - {{condition: {{logic: "state.word > 3"}}, to: more}}
      - {{condition: {{logic: default}}, to: END}}
  - {{from: more, to: END}}
"""

# The same failing route on a node with on_error: the rescue node reads the failed node's output.
BAD_CONDITION_RESCUED = f"""
schema_version: "1.0"
flow: {{name: bad_condition_rescued}}
state:
  fields:
    topic: {{type: str, required: true}}
    word: {{type: str, default: ""}}
    after: {{type: str, default: ""}}
nodes:
  - {{id: speak, prompt: "Say {{topic}}", outputs: [word], output_schema: {out("word:str")}, on_error: rescue}}
  - {{id: more, prompt: "More {{state.word}}", outputs: [after], output_schema: {out("after:str")}}}
  - {{id: rescue, prompt: "Rescue {{error}} after {{state.word}}", outputs: [after],
     output_schema: {out("after:str")}}}
edges:
  - {{from: START, to: speak}}
  - from: speak
    routes:
      - {{condition: {{logic: "state.word > 3"}}, to: more}}
      - {{condition: {{logic: default}}, to: END}}
  - {{from: more, to: END}}
  - {{from: rescue, to: END}}
"""

# A loop node that answers badly on its second turn, rescued by on_error.
LOOP_FAILS = f"""
schema_version: "1.0"
flow: {{name: loop_fails}}
state:
  fields:
    topic: {{type: str, required: true}}
    done: {{type: bool, default: false}}
    tries: {{type: int, default: 0, reducer: sum}}
    apology: {{type: str, default: ""}}
nodes:
  - id: work
    prompt: "Try {{topic}} ({{state.tries}})"
    outputs: [done, tries]
    output_schema: {out("done:bool", "tries:int")}
    retry: {{max_attempts: 2, on: [bad_output]}}
    on_error: rescue
  - {{id: rescue, prompt: "Apologise at {{state.tries}}", outputs: [apology], output_schema: {out("apology:str")}}}
edges:
  - {{from: START, to: work}}
  - from: work
    loop: {{max_iterations: 4, condition_field: done, exit_to: END}}
  - {{from: rescue, to: END}}
"""

# A map over a list field that is null when the run reaches it (the inputs did not give it).
MAP_OVER_NULL = f"""
schema_version: "1.0"
flow: {{name: map_over_null}}
state:
  fields:
    topic: {{type: str, required: true}}
    topics: {{type: "list[str]", default: null}}
    intro: {{type: str, default: ""}}
    notes: {{type: "list[str]", default: []}}
    note: {{type: str, default: ""}}
nodes:
  - {{id: intro, prompt: "Introduce {{topic}}", outputs: [intro], output_schema: {out("intro:str")}}}
  - id: research
    foreach: {{items: state.topics, collect: notes}}
    prompt: "Research {{item}}"
    outputs: [note]
    output_schema: {out("note:str")}
edges:
  - {{from: START, to: intro}}
  - {{from: intro, to: research}}
  - {{from: research, to: END}}
"""

# Branches run on copies of the state at the fan-out: `c` must not see what `b` wrote.
FAN_ISOLATION = f"""
schema_version: "1.0"
flow: {{name: fan_isolation}}
state:
  fields:
    topic: {{type: str, required: true}}
    x: {{type: str, default: "unset"}}
    seen_by_c: {{type: str, default: ""}}
    y: {{type: str, default: ""}}
nodes:
  - {{id: a, prompt: "Start {{topic}}", outputs: [y], output_schema: {out("y:str")}}}
  - {{id: b, prompt: "Write x for {{topic}}", outputs: [x], output_schema: {out("x:str")}}}
  - {{id: c, prompt: "Read x", outputs: [seen_by_c], output_schema: {out("seen_by_c:str")}}}
  - {{id: d, prompt: "Join {{state.x}} {{state.seen_by_c}}", outputs: [y], output_schema: {out("y:str")}}}
edges:
  - {{from: START, to: a}}
  - {{from: a, to: [b, c]}}
  - {{from: b, to: d}}
  - {{from: c, to: d}}
  - {{from: d, to: END}}
"""

REVIEW_SCRIPT: dict[str, list[Any]] = {
    "plan": [{"angles": ["history", "design", "future"]}],
    "research": [{"note": "note about {item} ({index})"}],
    "write": [{"draft": "draft 0"}],
    "score": [{"score": 0.5}],
    "revise": [{"draft": "draft 1", "approved": False}, {"draft": "draft 2", "approved": True}],
    "publish": [{"summary": "summary of {state.draft}"}],
}

DIAMOND_SCRIPT: dict[str, list[Any]] = {
    "a": [{"notes": "from a"}],
    "b": [{"x": "left", "notes": "from b", "total": 2}],
    "b2": [{"x2": "{state.x} again"}],
    "c": [{"y": "right", "notes": "from c", "total": 5}],
    "d": [{"joined": "{state.x2} + {state.y}"}],
}

CASES: list[Case] = [
    Case("review_loop-mock", seed("review_loop"), {"topic": "actors"}),
    Case(
        "review_loop-script",
        seed("review_loop"),
        {"topic": "actors"},
        REVIEW_SCRIPT,
        expect={
            "notes": ["note about history (0)", "note about design (1)", "note about future (2)"],
            "summary": "summary of draft 2",
            "approved": True,
        },
    ),
    Case("echo", seed("echo"), {"message": "hello"}),
    Case("simple_workflow", seed("simple_workflow"), {"name": "Ada"}),
    Case("article_writer", seed("article_writer"), {"topic": "bees"}),
    Case("nested_state", seed("nested_state"), {"name": "Ada", "interests": ["maths", "engines"]}),
    Case("diamond-mock", (FLOWS / "diamond.yaml").read_text(), {"topic": "t"}, model="mock/5ms"),
    Case(
        "diamond-script",
        (FLOWS / "diamond.yaml").read_text(),
        {"topic": "t"},
        DIAMOND_SCRIPT,
        expect={"joined": "left again + right", "notes": ["from a", "from b", "from c"], "total": 7},
    ),
    Case(
        "map50-six-items", (FLOWS / "map50.yaml").read_text(), {"items": [f"u{i}" for i in range(6)]}, model="mock/5ms"
    ),
    Case("map50-empty", (FLOWS / "map50.yaml").read_text(), {"items": []}, expect={"pages": []}),
    Case("route-int-default", ROUTE_INT, {"n": 3}),
    Case("route-int-second", ROUTE_INT, {"n": 7}),
    Case("route-int-first", ROUTE_INT, {"n": 12}),
    *(
        Case(f"route-str-{answer}", ROUTE_STR, {"answer": answer}, {"judge": [{"verdict": "{state.answer}"}]})
        for answer in ("yes", "maybe", "no")
    ),
    Case("route-cycle-script", ROUTE_CYCLE, {}, {"a": [{"n": 1}], "b": [{"verdict": "again"}]}, expect={"n": 3}),
    Case("route-cycle-mock", ROUTE_CYCLE, {}),
    Case(
        "loop-never-true", LOOP_NEVER_TRUE, {"topic": "t"}, {"work": [{"done": False, "tries": 1}]}, expect={"tries": 4}
    ),
    Case("loop-mock", LOOP_NEVER_TRUE, {"topic": "t"}),
    Case("map-parallel-edge-two-outputs", MAP_PARALLEL, {"xs": ["a", "b", "c", "d", "e"]}, model="mock/5ms"),
    Case("map-parallel-edge-empty", MAP_PARALLEL, {"xs": []}),
    Case("fan-out-to-end", FAN_TO_END, {"topic": "t"}),
    Case(
        "join-reducers-script",
        JOIN_REDUCERS,
        {"topic": "t"},
        {
            "start": [{"total": 1}],
            "p": [{"items": "p", "total": 2, "peak": 7}],
            "q": [{"items": "q", "total": 3, "peak": 4}],
            "r": [{"items": "r", "total": 5, "peak": 9}],
        },
        expect={"items": ["seed", "p", "q", "r"], "total": 21, "peak": 9},
    ),
    Case("join-reducers-mock", JOIN_REDUCERS, {"topic": "t"}, model="mock/5ms"),
    Case("fan-out-in-route-cycle", FAN_IN_CYCLE, {"topic": "t"}, model="mock/5ms"),
    Case("map-in-route-cycle", MAP_IN_CYCLE, {"xs": ["a", "b", "c"]}, model="mock/5ms"),
    Case("map-with-loop-edge", MAP_LOOP, {"xs": ["a", "b"]}),
    Case("join-with-loop-edge", JOIN_LOOP, {"topic": "t"}, {"join": [{"done": False, "trail": "j{state.a}"}]}),
    Case("join-with-loop-edge-mock", JOIN_LOOP, {"topic": "abc"}),
    Case(
        "join-extend-min-merge",
        JOIN_MORE_REDUCERS,
        {"topic": "t"},
        {
            "start": [{"low": 40}],
            "p": [{"words": ["p1", "p2"], "low": 30, "meta": {"p": 1}}],
            "q": [{"words": ["q1"], "low": 45, "meta": {"q": 2, "k": 3}}],
            "q2": [{"words": ["q2"]}],
        },
        expect={"words": ["w", "p1", "p2", "q1", "q2"], "low": 30, "meta": {"k": 3, "p": 1, "q": 2}},
    ),
    Case("routes-used-up", ROUTES_USED_UP, {}, {"a": [{"n": 1}], "b": [{"via": "b{state.n}"}]}, expect={"n": 4}),
    Case(
        "map-item-fails-into-on-error",
        MAP_ITEM_FAILS,
        {"xs": ["1", "x", "3"]},
        {"parse": [{"value": "{item}"}], "rescue": [{"apology": "sorry"}]},
        on_error=True,
    ),
    Case(
        "map-item-fails",
        MAP_ITEM_FAILS_UNRESCUED,
        {"xs": ["1", "x", "3"]},
        {"parse": [{"value": "{item}"}]},
        status="failed",
    ),
    Case(
        "loop-fails-on-second-turn-into-on-error",
        LOOP_FAILS,
        {"topic": "t"},
        {"work": [{"done": False, "tries": 1}, {"done": False, "tries": "many"}], "rescue": [{"apology": "sorry"}]},
        on_error=True,
        expect={"tries": 1, "apology": "sorry"},
    ),
    Case("missing-required-input", seed("echo"), {}, status="rejected"),
    # Moves that cannot be decided after a node that ran (a route condition that raises, a map over
    # null): the node's step fails. With on_error both engines hand the rescue the state before the
    # node; without, the bus engine's failed run keeps the failed node's outputs in its state while
    # LangGraph's does not (the bus checkpoints the outputs before deciding the moves).
    Case("route-condition-fails", BAD_CONDITION, {"topic": "t"}, status="failed"),
    Case("map-over-null-after-a-node", MAP_OVER_NULL, {"topic": "t"}, status="failed"),
    Case("route-condition-fails-into-on-error", BAD_CONDITION_RESCUED, {"topic": "t"}, on_error=True),
    Case(
        "fan-out-branches-are-isolated",
        FAN_ISOLATION,
        {"topic": "t"},
        {"c": [{"seen_by_c": "{state.x}"}]},
        expect={"seen_by_c": "unset"},
    ),
    Case(
        "on-error-rescue",
        RISKY,
        {"topic": "t"},
        {"risky": [{"answer": "many"}], "rescue": [{"apology": "sorry: {error}"}]},
        on_error=True,
    ),
    Case(
        "failure-without-on-error",
        UNRESCUED,
        {"topic": "t"},
        {"risky": [{"answer": "many"}]},
        status="failed",
    ),
    Case(
        "code-nodes-sandbox-pipeline",
        SANDBOX_PIPELINE,
        {"input_numbers": [3, 8, 1, 12, 5]},
        expect={
            "sum_result": 29,
            "doubled": [6, 16, 2, 24, 10],
            "report": "total 29, 2 doubled values above 10: 16, 24\nmean of the doubled values: 11.6",
        },
    ),
    Case("code-nodes-in-a-map-and-routes", CODE_MAP, {"xs": [1, 2, 3]}, expect={"squares": [1, 5, 11], "total": 17}),
    Case("code-nodes-big-route", CODE_MAP, {"xs": [4, 5]}, expect={"squares": [16, 26], "total": 42}),
    Case(
        "code-node-policy-into-on-error",
        CODE_FAILS,
        {},
        on_error=True,
        expect={
            "apology": "sorry: code node 'risky' failed: policy: import of 'os' is not allowed "
            "(allowed: collections, datetime, functools, itertools, json, math, re, statistics)"
        },
    ),
    Case("code-node-result-outside-its-schema", CODE_BAD_RESULT, {}, status="failed"),
]
