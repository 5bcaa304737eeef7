"""Fail unless requirements.lock pins the whole dependency set, with binary wheels, for every Python we admit.

For each supported version, uv resolves the project with every extra under the lock as constraints;
the resolution must succeed with wheels only, and every package it picks must be pinned in the lock
(at that version), so no install ever takes an unpinned release.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.11", "3.12", "3.13")
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)")


def _pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def main() -> int:
    lock = _pins((ROOT / "requirements.lock").read_text())
    uv = Path(sys.executable).parent / "uv"
    failed = False
    for version in PYTHONS:
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
            cmd = [str(uv), "pip", "compile", "pyproject.toml", "--all-extras", "-c", "requirements.lock"]
            cmd += ["--python-version", version, "--python-platform", "x86_64-unknown-linux-gnu"]
            cmd += ["--only-binary", ":all:", "--quiet", "-o", out.name]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"lock: does not resolve for Python {version}:\n{done.stderr}", file=sys.stderr)
                failed = True
                continue
            resolved = _pins(Path(out.name).read_text())
        loose = sorted(f"{name}=={v}" for name, v in resolved.items() if lock.get(name) != v)
        if loose:
            print(f"lock: Python {version} resolves packages the lock does not pin: {loose}", file=sys.stderr)
            failed = True
        else:
            print(f"lock: resolves for Python {version} with wheels only ({len(resolved)} packages, all pinned)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
