"""What the README and the docs tell a user to run works as written (offline, with the mock model)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from configs import load_flow_text
from tests.conftest import EXAMPLES, ROOT
from tests.support.cli import cli, run_line

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_FLOWS = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(".mock.yaml"))


@pytest.mark.parametrize("flow", EXAMPLE_FLOWS, ids=lambda p: p.stem)
@pytest.mark.timeout(120)
def test_every_example_runs_offline_as_its_run_line_says(flow: Path, tmp_path: Path) -> None:
    result = cli(*run_line(flow), "--json", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"


def _readme_commands() -> list[list[str]]:
    """The README's commands that need no running stack (run, validate, schema), continuations joined."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            words = words[: words.index(">")] if ">" in words else words  # the output goes to the test
            if words[:1] == ["ca-actors"] and words[1:2] and words[1] in {"run", "validate", "schema"}:
                commands.append(words[1:])
    return commands


@pytest.mark.parametrize("command", _readme_commands(), ids=lambda c: " ".join(c[:2]))
@pytest.mark.timeout(120)
def test_the_readmes_commands_work_as_written(command: list[str]) -> None:
    result = cli(*command, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def _doc_flows() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.DOTALL)):
            if "schema_version" in block:
                found.append((f"{doc.name}#{i}", block))
    return found


@pytest.mark.parametrize(("where", "text"), _doc_flows(), ids=[w for w, _ in _doc_flows()])
def test_every_whole_flow_in_the_docs_validates(where: str, text: str) -> None:
    load_flow_text(text, where)
