"""The dashboard's pure parts: graph layout, trigger forms, YAML highlighting, event summaries, the token guard."""

from __future__ import annotations

from actors.flow import load_flows
from actors.ui import graph, views
from actors.ui.security import Guard, is_loopback
from bus import Event, NodeFinishedData, NodeStartedData
from configs import FieldSpec
from tests.conftest import EXAMPLES


def _spec(name: str):  # type: ignore[no-untyped-def]
    flow_set = load_flows([EXAMPLES / name])
    assert not flow_set.errors, flow_set.errors
    return flow_set.plans[0].spec


def test_the_graph_puts_each_node_one_layer_below_what_leads_to_it_and_draws_loops_as_back_edges() -> None:
    layout = graph.layout(_spec("research_team.yaml"))
    y = {b.node: b.y for b in layout.boxes}
    assert y["START"] < y["plan"] < y["research"] < y["write"] < y["fact_check"] == y["style"] < y["score"]
    assert y["publish"] < y["END"]
    edges = {(e.source, e.target): e for e in layout.edges}
    assert edges[("write", "fact_check")].kind == "fanout"
    assert edges[("score", "publish")].kind == "route"
    assert edges[("score", "publish")].label.startswith("state.score")
    back = [key for key, e in edges.items() if e.back]
    assert back, "the revise loop goes back up the graph"
    assert all(y[target] <= y[source] for source, target in back)
    assert all(b.x >= 0 and b.x + graph.BOX_W <= layout.width for b in layout.boxes)


def test_a_linear_flow_is_one_column_from_start_to_end() -> None:
    layout = graph.layout(_spec("demo.yaml"))
    assert [b.node for b in sorted(layout.boxes, key=lambda b: b.y)] == ["START", "outline", "draft", "title", "END"]
    assert len({b.x for b in layout.boxes}) == 1
    assert not any(e.back for e in layout.edges)


def test_trigger_form_fields_follow_the_state_field_types_defaults_and_required() -> None:
    fields = {
        "topic": FieldSpec(type="str", required=True, description="what"),
        "n": FieldSpec(type="int", default=3),
        "ratio": FieldSpec(type="float"),
        "loud": FieldSpec(type="bool", default=True),
        "tags": FieldSpec(type="list[str]", default=["a"]),
        "maybe": FieldSpec(type="Optional[int]", required=True),
    }
    shown = {f["name"]: f for f in views.form_fields(fields)}
    assert (shown["topic"]["widget"], shown["topic"]["required"], shown["topic"]["description"]) == (
        "text",
        True,
        "what",
    )
    assert (shown["n"]["widget"], shown["n"]["default"], shown["n"]["step"]) == ("number", "3", "1")
    assert (shown["ratio"]["widget"], shown["ratio"]["step"]) == ("number", "any")
    assert (shown["loud"]["widget"], shown["loud"]["default"]) == ("checkbox", True)
    assert (shown["tags"]["widget"], shown["tags"]["default"]) == ("json", '["a"]')
    assert (shown["maybe"]["widget"], shown["maybe"]["required"]) == ("number", False)
    inputs, problems = views.parse_form(fields, {"topic": "x", "n": "4", "ratio": "0.5", "tags": '["b"]', "maybe": ""})
    assert problems == []
    assert inputs == {"topic": "x", "n": 4, "ratio": 0.5, "loud": False, "tags": ["b"]}
    _, problems = views.parse_form(fields, {"n": "four", "tags": "[nope"})
    assert problems == ["n: 'four' is not a int", "tags: '[nope' is not JSON"]


def test_highlighted_yaml_is_escaped_and_marks_keys_and_comments() -> None:
    html = str(views.highlight_yaml("# a <b>note</b>\nname: <script>x</script>\n  - id: one"))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert '<span class="c"># a &lt;b&gt;note&lt;/b&gt;</span>' in html
    assert '<span class="k">name</span>:' in html
    assert '  - <span class="k">id</span>:' in html


def test_an_event_becomes_a_node_status_with_the_node_that_led_to_it() -> None:
    started = Event.of(
        NodeStartedData(after="r1.first.0.0"), run_id="r1", flow="f", node="second", step_id="r1.second.0.0"
    )
    view = views.event_view(7, started)
    assert (view["seq"], view["node_status"], view["from_node"]) == (7, "running", "first")
    first = Event.of(NodeStartedData(), run_id="r1", flow="f", node="first", step_id="r1.first.0.0")
    assert views.event_view(1, first)["from_node"] == "START"
    done = Event.of(NodeFinishedData(outputs={"b": "x" * 500}, duration_ms=1500), run_id="r1", flow="f", node="second")
    view = views.event_view(8, done)
    assert view["node_status"] == "done"
    assert view["summary"].startswith("1.50 s → ")
    assert len(view["summary"]) < 200


def test_a_token_is_needed_off_loopback_and_generated_when_none_is_given() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.5")
    local, generated = Guard.for_host("127.0.0.1", None)
    assert local.token is None
    assert not generated
    assert local.allows(None)
    guard, generated = Guard.for_host("0.0.0.0", None)
    assert generated
    assert guard.token is not None
    assert len(guard.token) >= 24
    assert not guard.allows(None)
    assert not guard.allows("wrong")
    assert guard.allows(guard.token)
    given, generated = Guard.for_host("0.0.0.0", "s3cret")
    assert (given.token, generated) == ("s3cret", False)
    assert guard.csrf_ok(guard.csrf)
    assert not guard.csrf_ok(None)
    assert not guard.csrf_ok(local.csrf)


def test_a_finished_step_shows_the_state_fields_it_changed_against_the_state_it_saw() -> None:
    seen: dict[str, object] = {}
    started = Event.of(
        NodeStartedData(inputs={"topic": "x", "draft": "old", "n": 1}), run_id="r1", flow="f", node="write",
        step_id="r1.write.0.0",
    )  # fmt: skip
    assert views.state_diff(started, seen) == []
    finished = Event.of(
        NodeFinishedData(outputs={"draft": "new", "n": 1, "title": "T"}), run_id="r1", flow="f", node="write",
        step_id="r1.write.0.0",
    )  # fmt: skip
    assert views.state_diff(finished, seen) == [
        {"field": "draft", "before": "old", "after": "new"},
        {"field": "title", "before": "", "after": "T"},
    ]
    assert seen == {}, "a step's state is forgotten once it finished"
