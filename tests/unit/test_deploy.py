"""`ca-actors deploy`'s analysis and manifests: what each process needs, schema-valid, in step with deploy/."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from actors.deploy import (
    Deployment,
    ManifestError,
    analyse,
    check_k8s,
    compose_problems,
    compose_tree,
    dns_name,
    k8s_problems,
    k8s_tree,
    model_env,
    render_compose,
    render_k8s,
)
from actors.deploy.gates import blocking_gates
from actors.flow import load_flows
from bus.natsconf import NatsCluster, NatsServerConfig, cluster_routes
from tests.conftest import EXAMPLES, ROOT
from tests.helpers import plans, write_flow

VERSION = "0.1.0"

SECRETIVE = """
schema_version: "1.0"
flow: {name: secretive_flow}
state:
  fields:
    q: {type: str, required: true}
    a: {type: str, default: ""}
    b: {type: str, default: ""}
nodes:
  - id: search
    prompt: "{state.q}"
    tools: [web_search, {name: file_read, actor: gpu-box}]
    outputs: [a]
    llm: {model: anthropic/claude-3-5-haiku-latest, fallbacks: [openai/gpt-4o-mini]}
  - id: answer
    prompt: "{state.a}"
    outputs: [b]
    llm: {model: openai/my-proxy-model, api_key_env: MY_PROXY_KEY}
edges: [{from: START, to: search}, {from: search, to: answer}, {from: answer, to: END}]
"""


@pytest.fixture
def secretive(tmp_path: Path) -> Deployment:
    return analyse(plans(write_flow(tmp_path / "secretive.yaml", SECRETIVE)))


def test_provider_keys_go_to_the_gateway_and_tool_keys_to_the_agents_that_run_the_tools(secretive: Deployment) -> None:
    assert secretive.gateway_env == ["ANTHROPIC_API_KEY", "MY_PROXY_KEY", "OPENAI_API_KEY"]
    search, answer = secretive.pools
    assert (search.flow_node, search.tools, search.env) == (
        "secretive_flow.search",
        ("web_search",),
        ("SEARXNG_URL", "SERPER_API_KEY", "TAVILY_API_KEY"),
    )
    assert answer.env == ()
    [host] = secretive.tool_hosts
    assert (host.actor, host.tools, host.name) == ("gpu-box", ("file_read",), "tools-gpu-box")


def test_the_manifests_name_secrets_but_never_hold_their_values(
    secretive: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    text = "".join(k8s_tree(secretive, version=VERSION).values()) + "".join(
        compose_tree(secretive, version=VERSION).values()
    )
    assert "sk-very-secret-value" not in text
    gateway = next(
        d for d in render_k8s(secretive, version=VERSION)["base/control.yaml"] if d["metadata"]["name"] == "llm-gateway"
    )
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert refs == {n: "ca-actors-llm" for n in ("ANTHROPIC_API_KEY", "MY_PROXY_KEY", "OPENAI_API_KEY")}
    scheduler = next(
        d for d in render_k8s(secretive, version=VERSION)["base/control.yaml"] if d["metadata"]["name"] == "scheduler"
    )
    assert "OPENAI_API_KEY" not in yaml.safe_dump(scheduler)


@pytest.mark.parametrize(
    ("model", "env"),
    [
        ("mock", ()),
        ("mock/100ms", ()),
        ("gpt-4o-mini", ("OPENAI_API_KEY",)),
        ("ollama_chat/llama3.2", ("OLLAMA_API_BASE",)),
        ("gemini/gemini-2.0-flash", ("GEMINI_API_KEY",)),
        ("somewhere/unknown", ()),
    ],
)
def test_a_model_names_the_variables_its_provider_reads(model: str, env: tuple[str, ...]) -> None:
    assert model_env(model) == env


def test_names_are_dns_safe_unique_and_short() -> None:
    a, b = dns_name("agent", "my_flow", "node"), dns_name("agent", "my-flow", "node")
    assert a != b
    assert b == "agent-my-flow-node"
    long = dns_name("agent", "f" * 80, "n" * 80)
    assert len(long) <= 52
    assert long.replace("-", "").isalnum()
    assert long == long.lower()


def test_every_node_gets_a_deployment_a_scaled_object_on_its_consumer_and_a_disruption_budget() -> None:
    deployment = analyse(load_flows([EXAMPLES]).plans)
    docs = render_k8s(deployment, version=VERSION)["base/agents.yaml"]
    for pool in deployment.pools:
        mine = {d["kind"]: d for d in docs if d["metadata"]["name"] == pool.name}
        assert set(mine) == {"Deployment", "ScaledObject", "PodDisruptionBudget"}
        assert mine["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
            "agent",
            "--nodes",
            pool.flow_node,
        ]
        [trigger] = mine["ScaledObject"]["spec"]["triggers"]
        assert trigger["type"] == "nats-jetstream"
        assert (trigger["metadata"]["stream"], trigger["metadata"]["consumer"]) == ("CA_WORK", pool.durable)


def test_every_generated_kubernetes_document_passes_its_schema() -> None:
    files = render_k8s(analyse(load_flows([EXAMPLES]).plans), version=VERSION)
    check_k8s(files)  # raises ManifestError listing every problem
    kinds = {d["kind"] for docs in files.values() for d in docs}
    assert {"StatefulSet", "Deployment", "ScaledObject", "PodDisruptionBudget", "NetworkPolicy", "Service"} <= kinds


def test_a_broken_manifest_is_reported_with_its_file_and_path() -> None:
    files = render_k8s(analyse(load_flows([EXAMPLES]).plans), version=VERSION)
    broken = copy.deepcopy(files["base/nats.yaml"])
    broken[3]["spec"]["replicas"] = "three"
    assert k8s_problems(broken[3], "nats.yaml#3") == [
        "nats.yaml#3: StatefulSet nats: spec/replicas: 'three' is not of type 'integer', 'null'"
    ]
    scaled = copy.deepcopy(files["base/agents.yaml"][1])
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 10  # KEDA's metadata is strings only
    with pytest.raises(ManifestError, match="lagThreshold"):
        check_k8s({"agents.yaml": [scaled]})


def test_the_compose_file_passes_the_compose_specification_and_a_typo_does_not() -> None:
    doc = render_compose(analyse(load_flows([EXAMPLES]).plans), version=VERSION)
    assert compose_problems(doc) == []
    doc["services"]["agent"]["restartt"] = "always"
    [problem] = compose_problems(doc)
    assert "services/agent" in problem
    assert "restartt" in problem


def test_nats_in_kubernetes_is_a_three_node_jetstream_cluster_and_actors_ask_for_three_replicas() -> None:
    files = render_k8s(analyse(load_flows([EXAMPLES]).plans), version=VERSION)
    config_map, _, _, statefulset, pdb = files["base/nats.yaml"]
    conf = config_map["data"]["nats.conf"]
    assert statefulset["spec"]["replicas"] == 3
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "server_name: $POD_NAME" in conf
    assert "jetstream {" in conf
    assert all(f"nats-route://nats-{i}.nats-headless:6222" in conf for i in range(3))
    for doc in files["base/control.yaml"] + files["base/agents.yaml"]:
        if doc["kind"] == "Deployment":
            env = {e["name"]: e.get("value") for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["CA_STREAM_REPLICAS"] == "3"


def test_a_cluster_member_config_lists_every_route() -> None:
    conf = NatsServerConfig(
        server_name="n1", store_dir="/d", cluster=NatsCluster(routes=cluster_routes(["10.0.0.1", "10.0.0.2"]))
    ).render()
    assert '"nats-route://10.0.0.1:6222"' in conf
    assert '"nats-route://10.0.0.2:6222"' in conf
    assert 'server_name: "n1"' in conf
    assert 'listen: "0.0.0.0:6222"' in conf


def test_the_committed_deploy_files_are_what_ca_actors_deploy_writes_for_the_examples() -> None:
    deployment = analyse(load_flows([EXAMPLES]).plans)
    compose = compose_tree(deployment, version=VERSION, flows_dir="../configs/examples", context="..")
    k8s = k8s_tree(deployment, version=VERSION)
    stale = [p for p, text in compose.items() if (ROOT / "deploy" / p).read_text() != text]
    stale += [f"k8s/{p}" for p, text in k8s.items() if (ROOT / "deploy" / "k8s" / p).read_text() != text]
    assert stale == [], "run `make deploy-files` and commit deploy/"


def test_a_failed_block_deploy_gate_blocks_and_a_passing_verdict_does_not(tmp_path: Path) -> None:
    gate = {"name": "quality", "metric": "accuracy", "value": 0.5, "min": 0.8, "max": None}
    blocked = tmp_path / "blocked.json"
    blocked.write_text(
        json.dumps(
            {
                "flow": "qa",
                "deployable": False,
                "gates": [
                    {**gate, "on_fail": "block_deploy", "passed": False},
                    {**gate, "name": "cost", "on_fail": "warn", "passed": False},
                ],
            }
        )
    )
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({"deployable": True, "gates": [{**gate, "passed": True}]}))
    assert blocking_gates([fine]) == []
    assert blocking_gates([fine, blocked]) == [f"{blocked} (flow qa): gate quality = 0.5 (min 0.8)"]
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ManifestError, match="no boolean 'deployable'"):
        blocking_gates([tmp_path / "other.json"])
