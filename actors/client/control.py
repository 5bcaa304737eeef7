"""The requests a client sends to a running stack: trigger, cancel, drain.

Each one is the typed request the scheduler (or the actor) answers; every failure comes back as an
answer with ``error`` set, so a front end shows one sentence instead of a traceback.
"""

from __future__ import annotations

from typing import Any

from actors.runtime.presence import DrainAnswer
from actors.scheduler.messages import RunAnswer, RunCommand, TriggerInputs
from bus import Bus, BusError, Empty, subjects


async def trigger_flow(bus: Bus, flow: str, inputs: dict[str, Any], *, timeout_s: float = 10.0) -> RunAnswer:
    """Start a run of `flow` with `inputs`; the answer names the run (or says why there is none)."""
    try:
        subject = subjects.trigger(flow)
    except ValueError as exc:
        return RunAnswer(error=str(exc))
    try:
        return await bus.request(subject, TriggerInputs(inputs), RunAnswer, timeout_s=timeout_s)
    except BusError as exc:
        return RunAnswer(error=str(exc))


async def cancel_run(bus: Bus, run_id: str, *, timeout_s: float = 10.0) -> RunAnswer:
    """Cancel a run (its steps in flight finish, nothing after them runs)."""
    return await _run_command(bus, run_id, RunCommand(cmd="cancel"), timeout_s)


async def _run_command(bus: Bus, run_id: str, command: RunCommand, timeout_s: float) -> RunAnswer:
    try:
        subject = subjects.run_cmd(run_id)
    except ValueError as exc:
        return RunAnswer(error=str(exc))
    try:
        return await bus.request(subject, command, RunAnswer, timeout_s=timeout_s)
    except BusError as exc:
        return RunAnswer(error=str(exc))


async def drain_actor(bus: Bus, actor_id: str, *, timeout_s: float = 5.0) -> str | None:
    """Tell an actor to finish its work in flight and exit; None when it agreed, else why not."""
    try:
        subject = subjects.registry_drain(actor_id)
    except ValueError as exc:
        return str(exc)
    try:
        await bus.request(subject, Empty(), DrainAnswer, timeout_s=timeout_s)
    except BusError as exc:
        return str(exc)
    return None
