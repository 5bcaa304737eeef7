"""What the pages show of runs, events and flows: plain functions from models to display values.

Nothing here builds HTML: templates do, with autoescaping, so a value from a run (a prompt, an
output, an error) is always shown as text.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from markupsafe import Markup, escape

from bus import Event
from configs import FieldSpec

# A node's colour on the graph after each kind of event about it.
NODE_STATUS = {
    "node.started": "running",
    "node.finished": "done",
    "node.failed": "failed",
    "node.retry": "retrying",
    "node.waiting": "waiting",
    "node.discarded": "discarded",
}
RUN_STATUS = {
    "run.started": "running",
    "run.finished": "succeeded",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
    "run.rejected": "rejected",
}


def clip(value: Any, limit: int = 160) -> str:
    """A one-line text of `value`, at most `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def usd(value: float | None) -> str:
    return f"${value or 0.0:.4f}"


def node_of_step(step_id: str | None) -> str | None:
    """The node of a step id ``run.node.iteration.index`` (run ids and node ids hold no dots)."""
    if not step_id:
        return None
    parts = step_id.split(".")
    return parts[-3] if len(parts) >= 4 else None


def summary(event: Event) -> str:
    """What an event says, in one line (the full data is one click away)."""
    d = event.data.model_dump()
    kind = event.kind
    if kind == "run.started":
        return f"inputs {clip(d.get('inputs'))}"
    if kind in ("run.finished", "run.failed", "run.cancelled"):
        error = f": {clip(d.get('error'))}" if d.get("error") else ""
        return f"{d.get('status', '')} in {ms(d.get('duration_ms'))}{error}"
    if kind == "run.rejected":
        return clip(d.get("error") or "")
    if kind == "node.started":
        where = f"iteration {d.get('iteration', 0)}" + (f", item {d.get('index', 0)}" if d.get("map") else "")
        again = f", delivery {d['delivery']}" if d.get("delivery", 1) > 1 else ""
        return where + again
    if kind == "node.finished":
        return f"{ms(d.get('duration_ms'))} → {clip(d.get('outputs'))}"
    if kind == "node.failed":
        return clip(d.get("error", "")) + (f" (on_error → {d['on_error']})" if d.get("on_error") else "")
    if kind == "node.retry":
        return f"attempt {d.get('attempt')} failed ({d.get('kind')}): {clip(d.get('error', ''))}"
    if kind == "node.waiting":
        return clip(d.get("reason", ""))
    if kind == "node.discarded":
        return f"finished after the run ended ({ms(d.get('duration_ms'))}): outputs not used"
    if kind == "llm.called":
        return f"{d.get('model', '')} (attempt {d.get('attempt', 0)})"
    if kind == "llm.finished":
        if not d.get("ok", True):
            return f"{d.get('model', '')} failed: {clip(d.get('error') or '')}"
        tools = f", tools {', '.join(d['tool_calls'])}" if d.get("tool_calls") else ""
        return (
            f"{d.get('model', '')}: {d.get('tokens_in', 0)}→{d.get('tokens_out', 0)} tokens, "
            f"{usd(d.get('cost_usd'))}, {ms(d.get('latency_ms'))}{tools}: {clip(d.get('content', ''), 100)}"
        )
    if kind == "tool.called":
        return f"{d.get('tool', '')}({clip(d.get('arguments'), 100)})"
    if kind == "tool.finished":
        if d.get("error"):
            return f"{d.get('tool', '')} failed: {clip(d['error'])}"
        return f"{d.get('tool', '')} in {ms(d.get('duration_ms'))} → {clip(d.get('result'), 100)}"
    if kind == "log":
        return f"[{d.get('level', '')}] {clip(d.get('message', ''))}"
    return clip(d)


def event_view(seq: int, event: Event) -> dict[str, Any]:
    """An event as the run page's template and script use it."""
    after = getattr(event.data, "after", None) if event.kind == "node.started" else None
    return {
        "seq": seq,
        "kind": event.kind,
        "node": event.node,
        "step_id": event.step_id,
        "time": time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts * 1000) % 1000:03d}",
        "summary": summary(event),
        "data": pretty(event.data.model_dump()),
        "node_status": NODE_STATUS.get(event.kind),
        "run_status": RUN_STATUS.get(event.kind),
        "from_node": node_of_step(after) if after else ("START" if event.kind == "node.started" else None),
        "ts": event.ts,
    }


def state_diff(event: Event, seen: dict[str, Any]) -> list[dict[str, str]]:
    """For a ``node.finished``: each state field its outputs changed, before → after (from the state its
    ``node.started`` saw, remembered in `seen` by step id); for other events, nothing."""
    if event.kind == "node.started" and event.step_id:
        inputs = getattr(event.data, "inputs", None)
        state = inputs.get("state") if getattr(event.data, "map", False) and isinstance(inputs, dict) else inputs
        if isinstance(state, dict):
            seen[event.step_id] = state
        return []
    if event.kind != "node.finished":
        return []
    before = seen.pop(event.step_id, None) if event.step_id else None
    outputs = getattr(event.data, "outputs", {}) or {}
    changes: list[dict[str, str]] = []
    for key, value in outputs.items():
        old = before.get(key) if isinstance(before, dict) else None
        if before is None or old != value:
            changes.append({"field": key, "before": "" if old is None else clip(old, 120), "after": clip(value, 120)})
    return changes


# --- trigger forms ------------------------------------------------------------------------------------------

_SCALARS = {"str": "text", "int": "number", "float": "number", "bool": "checkbox"}


def form_fields(fields: dict[str, FieldSpec]) -> list[dict[str, Any]]:
    """The inputs of a trigger form, one per state field: HTML input type, default, required, description."""
    out: list[dict[str, Any]] = []
    for name, spec in fields.items():
        base = spec.type.strip()
        optional = base.startswith("Optional[") or base.endswith("| None")
        base = re.sub(r"^Optional\[(.*)\]$", r"\1", base).replace("| None", "").strip()
        widget = _SCALARS.get(base, "json")
        default = spec.default if spec.has_default else None
        shown: str | bool
        if widget == "json":
            shown = "" if default is None else json.dumps(default)
        elif widget == "checkbox":
            shown = bool(default)
        else:
            shown = "" if default is None else str(default)
        out.append(
            {
                "name": name,
                "type": spec.type,
                "widget": widget,
                "step": "any" if base == "float" else "1",
                "required": spec.required and not optional,
                "default": shown,
                "description": spec.description,
            }
        )
    return out


def parse_form(fields: dict[str, FieldSpec], form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Trigger inputs from a submitted form, typed by each field; fields left empty are left out.

    Returns:
        The inputs, and one sentence per field that could not be read.
    """
    inputs: dict[str, Any] = {}
    problems: list[str] = []
    for view in form_fields(fields):
        name, widget = view["name"], view["widget"]
        if widget == "checkbox":
            if name in form or view["default"]:
                inputs[name] = name in form
            continue
        raw = form.get(name, "").strip()
        if raw == "":
            continue
        base = re.sub(r"^Optional\[(.*)\]$", r"\1", fields[name].type.strip()).replace("| None", "").strip()
        try:
            if widget == "json":
                inputs[name] = json.loads(raw)
            elif base == "int":
                inputs[name] = int(raw)
            elif base == "float":
                inputs[name] = float(raw)
            else:
                inputs[name] = raw
        except ValueError:
            what = "JSON" if widget == "json" else f"a {base}"
            problems.append(f"{name}: {raw!r} is not {what}")
    return inputs, problems


# --- YAML ---------------------------------------------------------------------------------------------------

_KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][\w-]*)(:)")


def highlight_yaml(source: str) -> Markup:
    """The YAML text as escaped HTML with comments and keys marked (spans ``c`` and ``k``), line by line."""
    lines: list[str] = []
    for line in source.splitlines():
        body, comment = line, ""
        stripped = line.lstrip()
        if stripped.startswith("#"):
            body, comment = "", line
        text = str(escape(body))
        match = _KEY.match(text)
        if match:
            text = f'{match.group(1)}<span class="k">{match.group(2)}</span>{match.group(3)}{text[match.end() :]}'
        if comment:
            text += f'<span class="c">{escape(comment)}</span>'
        lines.append(f'<span class="ln">{text}</span>')
    return Markup("\n".join(lines))
