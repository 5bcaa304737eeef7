"""Flow files into plans: every file validated (all problems at once), the valid ones compiled."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from actors.flow.plan import Plan, compile_plan
from actors.flow.prompt_registry import references
from actors.tools import tool_names
from configs import ConfigError, ConfigIssue, FlowSpec, check_flow, load_flow
from configs.errors import ActorError

# Fetches a flow's registry prompts: node id -> template text (raises ActorError).
PromptFetcher = Callable[[FlowSpec], dict[str, str]]


@dataclass
class FlowSet:
    """The flows of a directory (or a list of files) that compiled, and the problems of the others."""

    plans: list[Plan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)


# Mock scripts (node id -> scripted outputs, `--mock-script`) sit beside the flows they script.
MOCK_SUFFIXES = (".mock.yaml", ".mock.yml")


def is_mock_script(path: Path) -> bool:
    return path.name.endswith(MOCK_SUFFIXES)


def yaml_files(paths: Iterable[Path]) -> list[Path]:
    """YAML files named by `paths`: files as given, directories expanded (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"})
        else:
            files.append(path)
    return files


def flow_files(paths: Iterable[Path]) -> list[Path]:
    """The flow files named by `paths`: files as given, directories expanded (sorted), mock scripts left out."""
    return [f for f in yaml_files(paths) if not is_mock_script(f)]


def load_flows(paths: Iterable[Path], *, fetch_prompts: PromptFetcher | None = None) -> FlowSet:
    """Validate and compile flow files; invalid files are reported, not fatal.

    Prompts a flow takes from the MLflow prompt registry (``prompt: mlflow:/prompts/...``) are fetched
    with `fetch_prompts` (`actors.tracking.prompt_fetcher`); without it such a flow is an error.
    """
    result = FlowSet()
    for file in flow_files(paths):
        try:
            loaded = load_flow(file, tools=tool_names())
        except ConfigError as exc:
            result.errors.append(str(exc))
            continue
        except OSError as exc:
            result.errors.append(f"{file}: {exc.strerror or exc}")
            continue
        try:
            prompts = _registry_prompts(loaded.spec, fetch_prompts)
        except ActorError as exc:
            result.errors.append(f"{file}: {exc}")
            continue
        plan = compile_plan(loaded, prompts)
        problems = registry_prompt_problems(plan) if prompts else []
        if problems:
            result.errors += [f"{file}: {problem}" for problem in problems]
            continue
        result.warnings += loaded.warnings
        result.plans.append(plan)
    return result


def registry_prompt_problems(plan: Plan) -> list[str]:
    """What is wrong with the registry prompts of a plan, checked like prompts written in the file."""
    spec = plan.spec
    found: list[str] = []
    for problem in check_flow(spec, tools=tool_names()):
        path = problem.path
        if problem.severity != "error" or len(path) < 3 or path[0] != "nodes" or path[2] != "prompt":
            continue
        node = spec.nodes[int(path[1])].id
        if node in plan.prompts:
            hint = f" ({problem.suggestion})" if problem.suggestion else ""
            found.append(f"node '{node}': the registry prompt: {problem.message}{hint}")
    return found


def _registry_prompts(spec: FlowSpec, fetch: PromptFetcher | None) -> dict[str, str]:
    refs = references(spec)
    if not refs:
        return {}
    if fetch is None:
        node, ref = next(iter(refs.items()))
        raise ActorError(
            f"node '{node}': prompt {ref} is in the MLflow prompt registry, which this command does not read"
        )
    return fetch(spec)


def flow_names(paths: Iterable[Path]) -> frozenset[str]:
    """The names of the flows in `paths` (files that do not parse are left out): what a worker serves."""
    names: set[str] = set()
    for file in flow_files(paths):
        with contextlib.suppress(ConfigError, OSError):
            names.add(load_flow(file, tools=tool_names()).spec.flow.name)
    return frozenset(names)
