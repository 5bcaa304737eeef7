"""The deploy files build: each Dockerfile's build context holds everything the package needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from actors.deploy import k8s_problems
from actors.deploy.validate import KUBERNETES_VERSION
from bus import find_nats_server
from tests.conftest import ROOT
from tests.support.cli import cli

DOCKERFILES = sorted((ROOT / "deploy").glob("Dockerfile*"))
BIN = Path(sys.executable).parent


def _copied(dockerfile: Path) -> list[str]:
    """The repository paths a Dockerfile's COPY lines take from the build context."""
    paths: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            paths += [w for w in words[1:-1] if not w.startswith("--")]
    return paths


def _context(dockerfile: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    for path in _copied(dockerfile):
        source = ROOT / path
        if source.is_dir():
            shutil.copytree(source, into / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / path)
    return into


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
@pytest.mark.timeout(300)
def test_the_package_builds_from_exactly_the_files_a_dockerfile_copies(dockerfile: Path, tmp_path: Path) -> None:
    context = _context(dockerfile, tmp_path / "context")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        str(p.relative_to(ROOT))
        for package in ("bus", "configs", "actors", "store")
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources - names == set(), "modules of the repository missing from the image's wheel"
    data = {str(p.relative_to(ROOT)) for p in (ROOT / "actors" / "deploy" / "schemas").glob("*.json")}
    assert data - names == set(), "the deploy schemas missing from the image's wheel"
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        image = subprocess.run(
            ["docker", "build", "-q", "-f", str(dockerfile), str(ROOT)], capture_output=True, text=True, check=False
        )
        assert image.returncode == 0, image.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_image_runs_as_a_non_root_user_drains_on_sigterm_and_checks_its_own_health(dockerfile: Path) -> None:
    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    assert "USER agent" in lines
    assert "STOPSIGNAL SIGTERM" in lines
    [health] = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert health.endswith('CMD ["ca-actors", "health"]')


@pytest.mark.parametrize("overlay", ["dev", "prod"])
@pytest.mark.timeout(300)
def test_each_kustomize_overlay_renders_and_every_document_passes_kubernetes_validate(
    overlay: str, tmp_path: Path
) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = list(yaml.safe_load_all(rendered))
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {"ca-actors"}
    core = [d for d in docs if d["apiVersion"] != "keda.sh/v1alpha1"]
    (tmp_path / "core.yaml").write_text(yaml.safe_dump_all(core))
    # The CLI of kubernetes-validate, strict (unknown fields fail), as an operator would run it.
    checked = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(tmp_path / "core.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert scaled, "no ScaledObject rendered"
    assert [p for d in scaled for p in k8s_problems(d, overlay)] == []
    if overlay == "prod":
        assert {d["spec"]["minReplicaCount"] for d in scaled} == {2}


def test_the_compose_file_passes_check_jsonschema_with_its_vendored_compose_specification() -> None:
    checked = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "deploy" / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_generated_nats_server_config_is_accepted_by_nats_server(tmp_path: Path) -> None:
    from actors.deploy import compose, k8s

    for name, conf in (("compose", compose.nats_config()), ("k8s", k8s.nats_config())):
        path = tmp_path / f"{name}.conf"
        path.write_text(conf.render())
        tested = subprocess.run(
            [find_nats_server(), "-c", str(path), "-t"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "POD_NAME": "nats-0"},
        )
        assert tested.returncode == 0, tested.stderr
        assert "is valid" in tested.stdout + tested.stderr


def test_deploy_writes_validated_manifests_naming_the_secrets_and_refuses_bad_flows(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "ask.yaml").write_text(
        'schema_version: "1.0"\nflow: {name: ask}\nstate:\n  fields:\n    q: {type: str, required: true}\n'
        '    a: {type: str, default: ""}\nnodes:\n  - {id: answer, prompt: "{state.q}", outputs: [a], '
        "llm: {model: openai/gpt-4o-mini}}\nedges: [{from: START, to: answer}, {from: answer, to: END}]\n"
    )
    out = tmp_path / "out"
    done = cli("deploy", str(flows), "--target", "k8s", "--out", str(out), "--tag", "9.9.9")
    assert done.returncode == 0, done.stderr
    assert "ask.answer" in done.stdout
    assert "OPENAI_API_KEY" in done.stdout
    assert "OPENAI_API_KEY=\n" in (out / "secrets.env.example").read_text()
    agents = list(yaml.safe_load_all((out / "base" / "agents.yaml").read_text().split("\n", 1)[1]))
    assert {d["kind"] for d in agents} == {"Deployment", "ScaledObject", "PodDisruptionBudget"}
    assert agents[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "ca-actors-agent:9.9.9"
    again = cli("deploy", str(flows), "--target", "compose", "--out", str(out))
    assert again.returncode == 2
    assert "not empty" in again.stderr
    compose_out = tmp_path / "compose"
    done = cli("deploy", str(flows), "--target", "compose", "--out", str(compose_out))
    assert done.returncode == 0, done.stderr
    assert (compose_out / "flows" / "ask.yaml").exists()
    (flows / "bad.yaml").write_text('schema_version: "1.0"\nflow: {name: bad}\nnodes: [{id: x, outputs: [nope]}]\n')
    refused = cli("deploy", str(flows), "--target", "k8s", "--out", str(tmp_path / "never"))
    assert refused.returncode == 1
    assert "bad.yaml" in refused.stderr
    assert not (tmp_path / "never").exists()
    (flows / "bad.yaml").unlink()
    verdict = tmp_path / "verdict.json"
    verdict.write_text(
        json.dumps({"deployable": False, "gates": [{"name": "q", "on_fail": "block_deploy", "passed": False}]})
    )
    gated = cli("deploy", str(flows), "--target", "k8s", "--out", str(tmp_path / "gated"), "--gates", str(verdict))
    assert gated.returncode == 1
    assert "BLOCK_DEPLOY" in gated.stderr
    assert not (tmp_path / "gated").exists()


@pytest.fixture(scope="session")
def keda_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`@kubernetes-models/keda` (validators generated from KEDA's CRDs) installed from npm with its lock."""
    where = tmp_path_factory.mktemp("keda-models")
    for name in ("package.json", "package-lock.json", "check.mjs"):
        shutil.copy2(ROOT / "tests" / "support" / "keda" / name, where / name)
    installed = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert installed.returncode == 0, installed.stderr
    return where


@pytest.mark.timeout(300)
def test_every_scaled_object_passes_the_validators_generated_from_kedas_crds(keda_models: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    scaled = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "ScaledObject"]
    broken = json.loads(json.dumps(scaled[0]))
    broken["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 10
    for docs, code in ((scaled, 0), ([broken], 1)):
        (keda_models / "docs.json").write_text(json.dumps(docs))
        checked = subprocess.run(
            ["node", "check.mjs", "docs.json"], cwd=keda_models, capture_output=True, text=True, check=False
        )
        assert checked.returncode == code, checked.stdout + checked.stderr
    assert "lagThreshold must be string" in checked.stdout
