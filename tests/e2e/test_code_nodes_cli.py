"""`ca-actors run` with code nodes: typed results on both engines, `--allow-unsandboxed`, docker mode errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.support.cli import cli

PIPELINE = str(EXAMPLES / "sandbox_pipeline.yaml")
INPUTS = '{"input_numbers": [3, 8, 1, 12, 5]}'

UNSANDBOXED = """
schema_version: "1.0"
flow: {name: trusted}
state:
  fields:
    n: {type: int, default: 0}
nodes:
  - {id: count, code: "import os\\nresult = len(os.listdir('.')) * 0 + 7", outputs: [n], sandbox: {enabled: false}}
edges: [{from: START, to: count}, {from: count, to: END}]
"""

DOCKER = """
schema_version: "1.0"
flow: {name: boxed}
state:
  fields:
    n: {type: int, default: 0}
nodes:
  - {id: count, code: "result = 7", outputs: [n], sandbox: {mode: docker}}
edges: [{from: START, to: count}, {from: count, to: END}]
"""


@pytest.mark.parametrize("engine", ["bus", "langgraph"])
def test_the_sandbox_example_runs_with_typed_results(engine: str) -> None:
    done = cli("run", PIPELINE, "--input-json", INPUTS, "--llm", "mock", "--engine", engine, "--json")
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)["state"]
    assert state["sum_result"] == 29
    assert state["doubled"] == [6, 16, 2, 24, 10]
    assert state["report"].startswith("total 29, 2 doubled values above 10: 16, 24")


def test_run_refuses_a_flow_with_unsandboxed_code_unless_allowed(tmp_path: Path) -> None:
    flow = tmp_path / "trusted.yaml"
    flow.write_text(UNSANDBOXED)
    refused = cli("run", str(flow), "--engine", "langgraph", "--json")
    assert refused.returncode == 2
    assert "--allow-unsandboxed" in refused.stderr
    assert "count" in refused.stderr
    allowed = cli("run", str(flow), "--engine", "langgraph", "--json", "--allow-unsandboxed")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["state"]["n"] == 7


def test_docker_mode_without_an_image_fails_with_a_clear_error(tmp_path: Path) -> None:
    flow = tmp_path / "boxed.yaml"
    flow.write_text(DOCKER)
    done = cli("run", str(flow), "--engine", "langgraph", "--json")
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert "sandbox mode docker needs a container image" in error


def test_docker_mode_with_an_image_but_no_engine_answering_says_so(tmp_path: Path) -> None:
    flow = tmp_path / "boxed.yaml"
    flow.write_text(DOCKER)
    done = cli("run", str(flow), "--engine", "langgraph", "--json", "--sandbox-image", "ca-actors-agent:none")
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    # Either no docker binary, or a docker that cannot reach a daemon / pull the image: said, not hidden.
    assert "sandbox mode docker: the container did not run: " in error or "no container engine" in error
    assert "Run 'docker run --help'" not in error
