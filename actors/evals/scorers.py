"""Scorers of `ca-actors eval` and A/B tests: how a run's final state is graded against expectations.

Spellings (FIELD is a state field; `exact`/`contains` compare it with the expectation of that name):

    exact:FIELD                 equal to the expectation (strings: ignoring case and outer spaces)
    contains:FIELD              contains the expectation (strings: ignoring case; lists: as an item)
    regex:FIELD:PATTERN         matches PATTERN anywhere (`regex:FIELD`: the expectation is the pattern)
    length:FIELD:MIN:MAX        length (characters, or items of a list) within MIN..MAX; either may be empty
    json_schema:FIELD[:FILE]    is JSON (a string that parses, or an object/list) valid against FILE
    judge[:FIELD]               a model through the LLM gateway grades 0..1 (FIELD, or the whole state)

Deterministic scorers are pure functions; the judge builds an `LLMRequest` and reads its reply, so
whoever runs it chooses how to reach the gateway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actors.flow.llm import ChatMessage, LLMReply, LLMRequest
from configs import SCORER_KINDS, scorer_metric
from configs.errors import CaActorsError

# Split `--scorers a,b` only before a scorer kind, so that regex patterns may hold commas.
_LIST_SPLIT = re.compile(rf",\s*(?=(?:{'|'.join(SCORER_KINDS)})(?::|$|,))")

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "rationale": {"type": "string"},
    },
    "required": ["score", "rationale"],
}

_JUDGE_SYSTEM = (
    "You grade the output of an AI workflow. Compare the output with the expected values (when given) "
    "and the inputs. Answer with a score from 0 (wrong or useless) to 1 (fully correct) and a one-sentence "
    "rationale."
)


class ScorerError(CaActorsError, ValueError):
    """A scorer is misspelt, or cannot grade a row (missing expectation, bad schema file)."""

    def __init__(self, spec: str, message: str) -> None:
        self.spec = spec
        super().__init__(f"scorer {spec!r}: {message}")


@dataclass(frozen=True)
class Score:
    """One grade: a bool (pass/fail) or a float in 0..1, and why."""

    value: bool | float
    rationale: str = ""


@dataclass(frozen=True)
class Scorer:
    """A deterministic scorer, parsed from its spelling by `parse_scorer`."""

    spec: str
    kind: str
    field: str
    name: str
    pattern: str | None = None
    min_len: int | None = None
    max_len: int | None = None
    schema: dict[str, Any] | None = None

    @property
    def needs_expectation(self) -> bool:
        """True when every row must give the expectation of `field`."""
        return self.kind in ("exact", "contains") or (self.kind == "regex" and self.pattern is None)

    def score(self, outputs: Mapping[str, Any], expectations: Mapping[str, Any]) -> Score:
        """Grade one row.

        Raises:
            ScorerError: the row lacks the expectation this scorer compares with.
        """
        if self.needs_expectation and self.field not in expectations:
            raise ScorerError(self.spec, f"the row has no expectation {self.field!r}")
        value = outputs.get(self.field)
        expected = expectations.get(self.field)
        if self.kind == "exact":
            ok = _norm(value) == _norm(expected)
            return Score(ok, "" if ok else f"{_short(value)} != {_short(expected)}")
        if self.kind == "contains":
            ok = _contains(value, expected)
            return Score(ok, "" if ok else f"{_short(value)} does not contain {_short(expected)}")
        if self.kind == "regex":
            pattern = self.pattern if self.pattern is not None else str(expected)
            ok = re.search(pattern, _text(value)) is not None
            return Score(ok, "" if ok else f"{_short(value)} does not match /{pattern}/")
        if self.kind == "length":
            size = len(value) if isinstance(value, list | dict) else len(_text(value))
            ok = (self.min_len is None or size >= self.min_len) and (self.max_len is None or size <= self.max_len)
            bounds = f"{'' if self.min_len is None else self.min_len}..{'' if self.max_len is None else self.max_len}"
            return Score(ok, f"length {size} {'within' if ok else 'outside'} {bounds}")
        return self._json(value)

    def _json(self, value: Any) -> Score:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                return Score(False, f"not JSON: {exc}")
        if self.schema is None:
            return Score(True, "valid JSON")
        try:
            import jsonschema  # type: ignore[import-untyped]  # no stubs installed; only this scorer needs it
        except ImportError as exc:  # pragma: no cover - installed with litellm and mlflow's extras
            raise ScorerError(self.spec, "needs jsonschema: pip install jsonschema") from exc
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(self.schema).iter_errors(value))
        return Score(error is None, "" if error is None else error.message)


@dataclass(frozen=True)
class Judge:
    """A model that grades a row 0..1 through the LLM gateway (`ca.llm.complete`)."""

    spec: str
    model: str
    name: str
    field: str | None = None
    criteria: str = ""

    def request(
        self, inputs: Mapping[str, Any], outputs: Mapping[str, Any], expectations: Mapping[str, Any]
    ) -> LLMRequest:
        """The completion that asks the model for a grade of one row."""
        if self.field is not None:
            output: Any = outputs.get(self.field)
            expected: Any = expectations.get(self.field)
        else:
            output, expected = dict(outputs), dict(expectations)
        parts = [
            f"Inputs:\n{json.dumps(dict(inputs), ensure_ascii=False, default=str)}",
            f"Output:\n{json.dumps(output, ensure_ascii=False, default=str)}",
        ]
        if expected not in (None, {}):
            parts.append(f"Expected:\n{json.dumps(expected, ensure_ascii=False, default=str)}")
        if self.criteria:
            parts.append(f"Criteria: {self.criteria}")
        messages = [
            ChatMessage(role="system", content=_JUDGE_SYSTEM),
            ChatMessage(role="user", content="\n\n".join(parts)),
        ]
        return LLMRequest(
            model=self.model, messages=messages, output_schema=JUDGE_SCHEMA, node=self.name, temperature=0
        )

    def grade(self, reply: LLMReply) -> Score:
        """Read the model's grade.

        Raises:
            ScorerError: the call failed or the answer is not a grade.
        """
        if not reply.ok:
            raise ScorerError(self.spec, f"the judge model failed: {reply.error}")
        try:
            answer = json.loads(reply.content)
            value = min(1.0, max(0.0, float(answer["score"])))
        except (ValueError, TypeError, KeyError) as exc:
            raise ScorerError(self.spec, f"the judge did not answer with a score: {reply.content[:200]!r}") from exc
        return Score(value, str(answer.get("rationale", "")))


AnyScorer = Scorer | Judge


def split_scorers(values: Iterable[str]) -> list[str]:
    """Scorer spellings from CLI values, each comma-separated (`exact:a,regex:b:x{1,3}` is two)."""
    return [part.strip() for value in values for part in _LIST_SPLIT.split(value) if part.strip()]


def parse_scorers(
    specs: Iterable[str],
    *,
    judge_model: str | None = None,
    state_fields: Iterable[str] | None = None,
    base_dir: Path = Path(),
) -> list[AnyScorer]:
    """Parse scorer spellings; metric names are made unique (`regex_answer`, `regex_answer_2`).

    Args:
        specs: Spellings such as `exact:answer`.
        judge_model: Model of `judge` scorers; with it and no `judge` spelling, a `judge` is added.
        state_fields: The flow's state fields, to reject unknown FIELDs (None: not checked).
        base_dir: Where relative `json_schema` schema files are.

    Raises:
        ScorerError: A spelling is invalid.
    """
    fields = None if state_fields is None else set(state_fields)
    result: list[AnyScorer] = []
    names: set[str] = set()
    spec_list = list(specs)
    if judge_model and not any(s.partition(":")[0] == "judge" for s in spec_list):
        spec_list.append("judge")
    for spec in spec_list:
        scorer = parse_scorer(spec, judge_model=judge_model, base_dir=base_dir)
        if fields is not None and scorer.field is not None and scorer.field not in fields:
            raise ScorerError(spec, f"{scorer.field!r} is not a state field (fields: {', '.join(sorted(fields))})")
        name, n = scorer.name, 1
        while name in names:
            n += 1
            name = f"{scorer.name}_{n}"
        names.add(name)
        result.append(scorer if name == scorer.name else _renamed(scorer, name))
    return result


def _renamed(scorer: AnyScorer, name: str) -> AnyScorer:
    if isinstance(scorer, Judge):
        return Judge(scorer.spec, scorer.model, name, scorer.field, scorer.criteria)
    return Scorer(
        scorer.spec, scorer.kind, scorer.field, name, scorer.pattern, scorer.min_len, scorer.max_len, scorer.schema
    )


def parse_scorer(spec: str, *, judge_model: str | None = None, base_dir: Path = Path()) -> AnyScorer:
    """Parse one scorer spelling (see the module docstring).

    Raises:
        ScorerError: Unknown kind, missing field, bad pattern, bounds or schema file.
    """
    kind, _, rest = spec.strip().partition(":")
    if kind not in SCORER_KINDS:
        raise ScorerError(spec, f"unknown scorer {kind!r}; scorers: {', '.join(SCORER_KINDS)}")
    if kind == "judge":
        if not judge_model:
            raise ScorerError(spec, "a judge needs a model: --judge MODEL (e.g. --judge mock)")
        return Judge(spec, judge_model, scorer_metric("judge", rest or None), rest or None)
    field_name, _, arg = rest.partition(":")
    if not field_name:
        raise ScorerError(spec, f"needs a state field: {kind}:FIELD")
    name = scorer_metric(kind, field_name)
    if kind == "regex":
        if arg:
            try:
                re.compile(arg)
            except re.error as exc:
                raise ScorerError(spec, f"invalid pattern: {exc}") from None
        return Scorer(spec, kind, field_name, name, pattern=arg or None)
    if kind == "length":
        low, sep, high = arg.partition(":")
        if not sep:
            raise ScorerError(spec, "spell it length:FIELD:MIN:MAX (MIN or MAX may be empty)")
        return Scorer(spec, kind, field_name, name, min_len=_bound(spec, low), max_len=_bound(spec, high))
    if kind == "json_schema":
        return Scorer(spec, kind, field_name, name, schema=_schema_file(spec, arg, base_dir) if arg else None)
    if arg:
        raise ScorerError(spec, f"{kind} takes only a field: {kind}:FIELD")
    return Scorer(spec, kind, field_name, name)


def _bound(spec: str, text: str) -> int | None:
    if not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise ScorerError(spec, f"length bound {text!r} is not a whole number") from None
    if value < 0:
        raise ScorerError(spec, f"length bound {value} is negative")
    return value


def _schema_file(spec: str, name: str, base_dir: Path) -> dict[str, Any]:
    path = Path(name) if Path(name).is_absolute() else base_dir / name
    try:
        schema = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScorerError(spec, f"cannot read the schema file {path}: {exc}") from None
    if not isinstance(schema, dict):
        raise ScorerError(spec, f"the schema file {path} must hold a JSON Schema object")
    return schema


def _norm(value: Any) -> Any:
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def _contains(value: Any, expected: Any) -> bool:
    if isinstance(value, list):
        return any(_norm(item) == _norm(expected) for item in value)
    if isinstance(value, dict):
        return expected in value
    return _text(_norm(expected)) in _text(_norm(value))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
