"""What the scheduler is asked and what it answers, as any NATS client sees it.

- ``ca.trigger.<flow>``: a JSON object of inputs (`TriggerInputs`), answered, when it is a request,
  with a `RunAnswer`: ``{"run_id": ..., "status": ...}`` (plus ``"error"`` for a rejected run), or
  ``{"error": ...}`` when no run could be made;
- ``ca.run.<id>.cmd``: ``{"cmd": "cancel"}`` (`RunCommand`), answered with a `RunAnswer`;
- ``ca.sys.assigned``: between schedulers, which stored trigger made which run (`Assigned`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, RootModel

from actors.runtime.runs import RunStatus
from bus import SparseWireModel, WireModel


class TriggerInputs(RootModel[dict[str, Any]]):
    """The body of a trigger: the inputs of the run, one JSON object."""

    model_config = ConfigDict(frozen=True)


class RunAnswer(SparseWireModel):
    """The answer to a trigger request or a run command: the run and its status, or why there is none."""

    omit_defaults = frozenset({"run_id", "status", "error"})

    run_id: str | None = None
    status: RunStatus | None = None
    error: str | None = None


class RunCommand(WireModel):
    """A command to one run; ``cancel`` is the only one there is."""

    cmd: str = ""


class Assigned(RunAnswer):
    """A scheduler's stored trigger created a run: the answer for requests of that trigger (by digest)."""

    digest: str

    def answer(self) -> RunAnswer:
        return RunAnswer(run_id=self.run_id, status=self.status, error=self.error)
