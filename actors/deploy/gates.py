"""Quality gates before a deploy: ``ca-actors deploy --gates FILE`` refuses a result that is not deployable.

A gate file is what ``ca-actors eval --json`` or ``ca-actors ab --json`` prints: a JSON object with a
``deployable`` flag (false when a gate with ``on_fail: BLOCK_DEPLOY`` failed) and its ``gates``, each
``{"name", "metric", "value", "min", "max", "on_fail", "passed"}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actors.deploy.validate import ManifestError


def _verdict(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError([f"{path}: not a gate verdict (the JSON of `ca-actors eval --json`): {exc}"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("deployable"), bool):
        raise ManifestError([f"{path}: not a gate verdict: no boolean 'deployable' (print it with `eval --json`)"])
    return data


def blocking_gates(paths: list[Path]) -> list[str]:
    """One line per gate that blocks the deploy, over every verdict file; empty when all are deployable.

    Raises:
        ManifestError: a file is not a gate verdict.
    """
    lines: list[str] = []
    for path in paths:
        data = _verdict(path)
        if data["deployable"]:
            continue
        failed = [g for g in data.get("gates", []) if isinstance(g, dict) and not g.get("passed", True)]
        blockers = [g for g in failed if str(g.get("on_fail", "")).lower() == "block_deploy"] or failed
        flow = f" (flow {data['flow']})" if data.get("flow") else ""
        for gate in blockers:
            bounds = ", ".join(f"{k} {gate[k]}" for k in ("min", "max") if gate.get(k) is not None)
            lines.append(
                f"{path}{flow}: gate {gate.get('name') or gate.get('metric')} = {gate.get('value')} ({bounds})"
            )
        if not blockers:
            lines.append(f"{path}{flow}: not deployable")
    return lines
