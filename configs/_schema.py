"""The pydantic models of a flow file (the seed format, `schema_version: "1.0"`, plus extensions).

Models keep unknown keys (`extra="allow"`) so that nothing a user wrote is lost; the loader warns
about them. Keys that later issues implement (tools, memory, sandbox, triggers, budget, ...) are
declared with permissive types so that they are parsed and kept without warnings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from configs._expr import Expr, ExprError, parse_expr

SCHEMA_VERSIONS: tuple[str, ...] = ("1.0",)
START = "START"
END = "END"
EdgeKind = Literal["to", "routes", "loop", "parallel"]
EDGE_KINDS: tuple[EdgeKind, ...] = ("to", "routes", "loop", "parallel")
Reducer = Literal["append", "extend", "merge", "max", "min", "sum"]
REDUCERS: tuple[Reducer, ...] = ("append", "extend", "merge", "max", "min", "sum")
FailureKind = Literal["llm_error", "timeout", "bad_output"]
FAILURE_KINDS: tuple[FailureKind, ...] = ("llm_error", "timeout", "bad_output")


def _number_to_str(value: Any) -> Any:
    # `version: 1.0` in YAML is a float; users mean the string.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


LooseStr = Annotated[str, BeforeValidator(_number_to_str)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class LLMSpec(_Spec):
    """Model settings for the whole flow (`config.llm`) or one node (`llm:`); extra keys pass through."""

    model: str | None = None
    provider: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    timeout: float | None = None
    fallbacks: list[str] = Field(default_factory=list)


class FlowMeta(_Spec):
    """The `flow:` block: name (a NATS subject token), description, version."""

    name: str
    description: str = ""
    version: LooseStr = ""


class FieldSpec(_Spec):
    """One state field: its type string, whether trigger inputs must give it, its default."""

    type: str
    required: bool = False
    default: Any = None
    description: str = ""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    reducer: Reducer | None = None

    @property
    def has_default(self) -> bool:
        """True when the file gives `default:` (even `default: null`)."""
        return "default" in self.model_fields_set


class StateSpec(_Spec):
    """The `state:` block: the fields every run carries."""

    fields: dict[str, FieldSpec] = Field(default_factory=dict)


class OutputField(_Spec):
    """One field of an `output_schema`: a node output name and its type."""

    name: str
    type: str = "str"
    description: str = ""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class OutputSchema(_Spec):
    """What a node's LLM must answer: an object with `fields`, or one scalar/list value."""

    type: str = "object"
    fields: list[OutputField] = Field(default_factory=list)
    description: str = ""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class ForeachSpec(_Spec):
    """Make a node a map node: run it once per item of the list at `items`, collect outputs into `collect`."""

    items: str
    as_: str = Field(default="item", alias="as")
    max_concurrency: int | None = Field(default=None, ge=1)
    collect: str


class RetrySpec(_Spec):
    """Retries of one node: attempts in all (default `1 + config.execution.max_retries`), backoff, kinds."""

    max_attempts: int | None = Field(default=None, ge=1)
    backoff_ms: int = Field(default=500, ge=0)
    on: list[FailureKind] = Field(default_factory=lambda: list(FAILURE_KINDS))


class MemorySpec(_Spec):
    """Long-term memory (seed: `enabled`, `default_scope`; extension: scope, key, read, limit, write, retention)."""

    enabled: bool = True
    default_scope: Literal["node", "agent", "workflow"] | None = None
    scope: Literal["node", "agent", "workflow"] | None = None
    key: str = ""
    read: Literal["recent", "all", "search"] = "recent"
    limit: int = Field(default=5, ge=1)
    write: list[str] | None = None
    max_items: int | None = Field(default=100, ge=1)
    ttl_days: float | None = Field(default=None, gt=0)


class BudgetSpec(_Spec):
    """Spending limits, checked by the LLM gateway *before* each call (its estimated cost is reserved).

    Per run: `max_cost_usd`, `max_tokens`; per flow and UTC day: `daily_max_cost_usd`, `daily_max_tokens`.
    `on_exceed: fail` fails the node (and the run); `pause` holds the step until the budget allows it.
    """

    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    daily_max_cost_usd: float | None = Field(default=None, gt=0)
    daily_max_tokens: int | None = Field(default=None, gt=0)
    on_exceed: Literal["fail", "pause"] = "fail"


def _memory_flag(value: Any) -> Any:
    # `memory: true` / `memory: false` is the seed's short form.
    return {"enabled": value} if isinstance(value, bool) else value


MemoryField = Annotated[MemorySpec | None, BeforeValidator(_memory_flag)]

SandboxPreset = Literal["low", "medium", "high"]
SANDBOX_PRESETS: tuple[SandboxPreset, ...] = ("low", "medium", "high")


class SandboxSpec(_Spec):
    """How a `code:` node runs (seed: `mode`, `enabled`, `network`, `preset`, `timeout`; plus overrides).

    `preset` sets CPU seconds, memory and wall time (docs/sandbox.md); each override replaces one of
    them. `enabled: false` runs the code without any sandbox and is refused unless the operator passes
    ``--allow-unsandboxed``; `mode: docker` runs it in a container (an image the operator configures).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["python", "docker"] = "python"
    enabled: bool = True
    network: bool = False
    preset: SandboxPreset | None = None
    timeout: float | None = Field(default=None, gt=0)
    cpu_seconds: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, ge=32)
    max_output_bytes: int | None = Field(default=None, ge=1)
    max_open_files: int | None = Field(default=None, ge=8)
    max_file_bytes: int | None = Field(default=None, ge=0)
    # mode: docker: the image to run (one with ca-actors installed); else the operator's --sandbox-image.
    image: str | None = None

    def overrides(self) -> dict[str, float | None]:
        """The per-field overrides, by the names `actors.sandbox.limits_for` takes."""
        return {
            "timeout": self.timeout,
            "cpu_seconds": self.cpu_seconds,
            "memory_mb": self.memory_mb,
            "max_output_bytes": self.max_output_bytes,
            "max_open_files": self.max_open_files,
            "max_file_bytes": self.max_file_bytes,
        }


class NodeSpec(_Spec):
    """One node: a prompt (or `code:` run in the sandbox), the state fields it writes (`outputs`), and
    how its answer looks."""

    id: str
    name: str = ""
    description: str = ""
    prompt: str = ""
    outputs: list[str] = Field(default_factory=list)
    output_schema: OutputSchema | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    llm: LLMSpec | None = None
    tools: list[str | dict[str, Any]] = Field(default_factory=list)
    memory: MemoryField = None
    code: str | None = None
    sandbox: SandboxSpec | None = None
    kind: str | None = None
    foreach: ForeachSpec | None = None
    retry: RetrySpec | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    on_error: str | None = None
    max_tool_calls: int | None = None

    @property
    def is_code(self) -> bool:
        """True for a code node (`code:`): it runs Python in the sandbox instead of asking a model."""
        return self.code is not None

    @model_validator(mode="before")
    @classmethod
    def _normalise_scalar_output(cls, data: Any) -> Any:
        """Turn `output_schema: {type: str}` of a one-output node into an object with one field."""
        if not isinstance(data, dict):
            return data
        schema = data.get("output_schema")
        outputs = data.get("outputs")
        if (
            isinstance(schema, dict)
            and isinstance(schema.get("type"), str)
            and schema["type"].strip() != "object"
            and not schema.get("fields")
            and isinstance(outputs, list)
            and len(outputs) == 1
            and isinstance(outputs[0], str)
        ):
            field: dict[str, Any] = {"name": outputs[0], "type": schema["type"]}
            for key in ("description", "schema"):
                if key in schema:
                    field[key] = schema[key]
            rest = {k: v for k, v in schema.items() if k not in ("type", "schema", "fields")}
            data = {**data, "output_schema": {**rest, "type": "object", "fields": [field]}}
        return data


class ConditionSpec(_Spec):
    """A route condition: `{logic: "<expression over state>"}` or `{logic: default}`."""

    logic: str

    @property
    def is_default(self) -> bool:
        """True for the fallback route (`logic: default`)."""
        return self.logic.strip() == "default"

    @property
    def expr(self) -> Expr:
        """The parsed condition (cached); check `is_default` first: the default route has no expression.

        Raises:
            ExprError: This is the default route, or the condition is not a valid expression (never
                after validation).
        """
        if self.is_default:
            raise ExprError("the default route has no expression; check is_default first", column=1, text=self.logic)
        return parse_expr(self.logic)


class RouteSpec(_Spec):
    """One branch of a conditional edge."""

    condition: ConditionSpec
    to: str
    max_iterations: int | None = Field(default=None, ge=1)


class LoopSpec(_Spec):
    """Repeat the edge's `from` node until `condition_field` is true, at most `max_iterations` runs."""

    max_iterations: int = Field(ge=1)
    condition_field: str
    exit_to: str


class ParallelSpec(_Spec):
    """Run `target_node` once per item of `items_field`; collect its outputs into `collect_field`."""

    items_field: str
    target_node: str
    collect_field: str
    max_concurrency: int | None = Field(default=None, ge=1)


class EdgeSpec(_Spec):
    """An edge from a node (or START): exactly one of `to`, `routes`, `loop`, `parallel`."""

    from_: str = Field(alias="from")
    to: str | list[str] | None = None
    routes: list[RouteSpec] | None = None
    loop: LoopSpec | None = None
    parallel: ParallelSpec | None = None

    @property
    def kinds(self) -> list[EdgeKind]:
        """The edge kinds given on this edge (a valid edge has exactly one)."""
        return [kind for kind in EDGE_KINDS if getattr(self, kind) is not None]

    @property
    def kind(self) -> EdgeKind:
        """The kind of this edge (the first given, for an invalid edge; `to` when none)."""
        kinds = self.kinds
        return kinds[0] if kinds else "to"

    def targets(self) -> list[str]:
        """Return the nodes (or END) a run can go to next from this edge's `from` node."""
        if self.to is not None:
            return [self.to] if isinstance(self.to, str) else list(self.to)
        if self.routes is not None:
            return [route.to for route in self.routes]
        if self.loop is not None:
            return [self.from_, self.loop.exit_to]
        if self.parallel is not None:
            return [self.parallel.target_node]
        return []


class ExecutionSpec(_Spec):
    """Run limits: `timeout` in seconds for a whole run, `max_retries` per step."""

    timeout: float | None = None
    max_retries: int = Field(default=3, ge=0)


# Aggregate metrics of an evaluation or an A/B variant, the names gates use (and MLflow metric keys).
# A scorer's mean is a metric too, named after the scorer (`exact:answer` -> `exact_answer`).
GateMetric = Literal[
    "quality",
    "success_rate",
    "cost_usd",
    "cost_usd_total",
    "latency_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens",
]
GATE_METRICS: tuple[GateMetric, ...] = get_args(GateMetric)
ScorerKind = Literal["exact", "contains", "regex", "length", "json_schema", "judge"]
SCORER_KINDS: tuple[ScorerKind, ...] = ("exact", "contains", "regex", "length", "json_schema", "judge")


def scorer_metric(kind: str, field: str | None) -> str:
    """The metric name of a scorer: `exact:answer` -> `exact_answer`, a bare `judge` -> `judge`."""
    return f"{kind}_{field}" if field else kind


class NodeOverride(_Spec):
    """What an A/B variant changes in one node: its prompt and/or its model settings."""

    prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)


class VariantSpec(_Spec):
    """One A/B variant: a name, an optional model for every node, and per-node overrides."""

    name: LooseStr
    description: str = ""
    model: str | None = None
    nodes: dict[str, NodeOverride] = Field(default_factory=dict)


def _named_variants(value: Any) -> Any:
    # `variants: {short: {...}, long: {...}}` is the same as a list with `name:` in each entry.
    if isinstance(value, dict):
        return [
            {"name": name, **(spec or {})} if isinstance(spec, dict) or spec is None else spec
            for name, spec in value.items()
        ]
    return value


class ABTestSpec(_Spec):
    """`config.ab_test`: run every variant `run_count` times (per dataset row) and compare them.

    Quality is the mean of the `scorers` (each 0..1), or the success rate when there are none; the
    winner has the highest quality, ties going to the lower cost, then the lower latency.
    """

    experiment: str | None = None
    run_count: int = Field(default=1, ge=1)
    parallel: bool = False
    dataset: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    scorers: list[str] = Field(default_factory=list)
    variants: Annotated[list[VariantSpec], BeforeValidator(_named_variants)] = Field(default_factory=list)


GateAction = Literal["fail", "warn", "block_deploy"]
# The seed's gate metric names, as ours (`_avg` is the mean over the runs, as our metrics are).
SEED_GATE_METRICS: dict[str, str] = {
    "cost_usd_avg": "cost_usd",
    "cost_usd_sum": "cost_usd_total",
    "duration_ms": "latency_ms",
    "duration_ms_avg": "latency_ms",
    "duration_ms_p50": "latency_p50_ms",
    "duration_ms_p95": "latency_p95_ms",
    "latency_ms_avg": "latency_ms",
    "quality_score": "quality",
    "quality_score_avg": "quality",
    "success_rate_avg": "success_rate",
    "tokens_avg": "tokens",
    "total_tokens_avg": "tokens",
}


class GateSpec(_Spec):
    """`config.gates` entry: a metric must stay within `min`/`max`; `on_fail: fail` exits non-zero.

    The seed's form is accepted too: `{name, description, enabled, metric: cost_usd_avg, threshold
    (a maximum), min_threshold, action: WARN | FAIL | BLOCK_DEPLOY}`; `enabled: false` skips the
    gate; `BLOCK_DEPLOY` fails like `FAIL` and marks the result as not deployable.
    """

    metric: str
    min: float | None = None
    max: float | None = None
    on_fail: GateAction = "fail"
    name: str = ""
    description: str = ""
    enabled: bool = True
    # The seed's names of max, min and on_fail (kept as written; the three above take their values).
    threshold: float | None = None
    min_threshold: float | None = None
    action: Literal["WARN", "FAIL", "BLOCK_DEPLOY", "warn", "fail", "block_deploy"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _seed_form(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "threshold" in data and "max" not in data:
            data["max"] = data["threshold"]
        if "min_threshold" in data and "min" not in data:
            data["min"] = data["min_threshold"]
        action = data.get("action")
        if isinstance(action, str) and "on_fail" not in data:
            data["on_fail"] = action.strip().lower()
        metric = data.get("metric")
        if isinstance(metric, str) and metric in SEED_GATE_METRICS:
            data.setdefault("name", metric)
            data["metric"] = SEED_GATE_METRICS[metric]
        return data


def _named_gates(value: Any) -> Any:
    # `gates: {quality: {min: 0.8}}` is the same as `gates: [{metric: quality, min: 0.8}]`; `gates:` is none.
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"metric": name, **spec} if isinstance(spec, dict) else spec for name, spec in value.items()]
    return value


class MlflowSpec(_Spec):
    """`config.observability.mlflow`: trace every run of this flow to `tracking_uri`, `experiment_name`."""

    enabled: bool = False
    tracking_uri: str | None = None
    experiment_name: str | None = None


def _enabled_flag(value: Any) -> Any:
    # `mlflow: true` is short for `mlflow: {enabled: true}`.
    return {"enabled": value} if isinstance(value, bool) else value


class ObservabilitySpec(_Spec):
    """`config.observability`: the seed's block; `mlflow` takes effect in `run` and `up`."""

    mlflow: Annotated[MlflowSpec | None, BeforeValidator(_enabled_flag)] = None


class StorageSpec(_Spec):
    """`config.storage`: the seed's `{backend: sqlite, path: ...}`, or `{url: ...}`: the run history store."""

    backend: str = "sqlite"
    path: str | None = None
    url: str | None = None


class RuntimeConfig(_Spec):
    """The `config:` block."""

    llm: LLMSpec | None = None
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    observability: ObservabilitySpec | None = None
    storage: StorageSpec | None = None
    memory: MemoryField = None
    budget: BudgetSpec | None = None
    ab_test: ABTestSpec | None = None
    gates: Annotated[list[GateSpec], BeforeValidator(_named_gates)] = Field(default_factory=list)
    logging: Any = None
    # Defaults of every code node's `sandbox:` (a node's own block replaces it).
    sandbox: SandboxSpec | None = None


class FlowSpec(_Spec):
    """A whole flow file."""

    schema_version: LooseStr
    flow: FlowMeta
    state: StateSpec = Field(default_factory=StateSpec)
    nodes: list[NodeSpec]
    edges: list[EdgeSpec]
    config: RuntimeConfig = Field(default_factory=RuntimeConfig)
    triggers: Any = None
    budget: BudgetSpec | None = None
    memory: MemoryField = None

    def node(self, node_id: str) -> NodeSpec:
        """Return the node with id `node_id`.

        Args:
            node_id: A node id.

        Returns:
            The node.

        Raises:
            KeyError: No node has that id.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)
