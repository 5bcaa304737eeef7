"""What one execution may use: presets (`low`, `medium`, `high`), per-field overrides, and the result."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from configs.errors import CaActorsError

Preset = Literal["low", "medium", "high"]
# What stopped an execution; "error" is the code's own exception (not a limit).
LimitName = Literal[
    "cpu", "memory", "timeout", "output", "policy", "network", "processes", "files", "recursion", "crash", "error"
]


@dataclass(frozen=True)
class Limits:
    """The limits of one execution. Per process (a pool of workers each): memory, files, network and the
    two layers; per execution: CPU seconds, wall-clock timeout, output size.

    `restricted` is layer 1 (RestrictedPython), `isolated` layer 2 (rlimits, no network, own user);
    both off is `enabled: false`, which only an operator may allow (``--allow-unsandboxed``).
    """

    cpu_s: float = 2.0
    memory_mb: int = 256
    timeout_s: float = 5.0
    output_bytes: int = 1_000_000
    open_files: int = 32
    file_size_bytes: int = 1_000_000
    network: bool = False
    restricted: bool = True
    isolated: bool = True

    def profile(self) -> tuple[Any, ...]:
        """What a worker process is started with: executions with the same profile share workers."""
        return (self.memory_mb, self.open_files, self.file_size_bytes, self.network, self.restricted, self.isolated)

    def process_config(self) -> dict[str, Any]:
        return {
            "memory_mb": self.memory_mb,
            "open_files": self.open_files,
            "file_size_bytes": self.file_size_bytes,
            "network": self.network,
            "restricted": self.restricted,
            "isolated": self.isolated,
        }


PRESETS: dict[Preset, Limits] = {
    "low": Limits(cpu_s=2.0, memory_mb=256, timeout_s=5.0, output_bytes=1_000_000),
    "medium": Limits(cpu_s=10.0, memory_mb=512, timeout_s=30.0, output_bytes=5_000_000),
    "high": Limits(cpu_s=60.0, memory_mb=2048, timeout_s=120.0, output_bytes=20_000_000),
}
DEFAULT_PRESET: Preset = "low"

# Sandbox keys a flow may override besides its preset, and the Limits field each sets.
OVERRIDES = {
    "timeout": "timeout_s",
    "cpu_seconds": "cpu_s",
    "memory_mb": "memory_mb",
    "max_output_bytes": "output_bytes",
    "max_open_files": "open_files",
    "max_file_bytes": "file_size_bytes",
}


def limits_for(
    preset: Preset | None = None, *, network: bool = False, enabled: bool = True, **overrides: float | None
) -> Limits:
    """The limits of a preset (default `low`) with the given overrides (keys of `OVERRIDES`; None: keep)."""
    base = PRESETS[preset or DEFAULT_PRESET]
    changes: dict[str, Any] = {"network": network, "restricted": enabled, "isolated": enabled}
    for key, value in overrides.items():
        if value is None:
            continue
        name = OVERRIDES[key]
        changes[name] = float(value) if name in ("cpu_s", "timeout_s") else int(value)
    return replace(base, **changes)


class SandboxError(CaActorsError):
    """The sandbox could not run the code at all (no container engine, a worker failed to start, ...)."""


@dataclass(frozen=True)
class SandboxResult:
    """What one execution gave: its `result` and printed text, or the limit (or error) that stopped it."""

    ok: bool
    result: Any = None
    stdout: str = ""
    limit: LimitName | None = None
    error: str = ""
    duration_ms: float = 0.0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """One line for a failed execution: ``SandboxLimit: memory (...)``, ``policy: ...``, or the error."""
        if self.ok:
            return "ok"
        if self.limit == "policy":
            return f"policy: {self.error}"
        if self.limit == "error":
            return self.error
        return f"SandboxLimit: {self.limit} ({self.error})" if self.error else f"SandboxLimit: {self.limit}"

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "result": self.result, "limit": self.limit, "error": self.error})
