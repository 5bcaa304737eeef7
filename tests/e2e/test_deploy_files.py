"""The deploy files build: each Dockerfile's build context holds everything the package needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILES = sorted((ROOT / "deploy").glob("Dockerfile*"))


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
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        image = subprocess.run(
            ["docker", "build", "-q", "-f", str(dockerfile), str(ROOT)], capture_output=True, text=True, check=False
        )
        assert image.returncode == 0, image.stderr
