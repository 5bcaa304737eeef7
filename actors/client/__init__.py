"""What a client of a running stack reads and asks, for the dashboard (and any other front end).

Reads: run history pages from the store (keyset pagination), a run's record, events and dead letters
from NATS (events from any stream sequence on, for resumable live views), plans, the registry. Requests:
trigger a flow, cancel a run, drain an actor — each the typed request the
scheduler or the actor itself answers.
"""

from actors.client.control import cancel_run, drain_actor, trigger_flow
from actors.client.reads import RunPage, RunRow, agent_rows, dead_letters, flow_plans, plan_of, run_page
from actors.client.streams import ActiveRuns, follow

__all__ = [
    "ActiveRuns",
    "RunPage",
    "RunRow",
    "agent_rows",
    "cancel_run",
    "dead_letters",
    "drain_actor",
    "flow_plans",
    "follow",
    "plan_of",
    "run_page",
    "trigger_flow",
]
