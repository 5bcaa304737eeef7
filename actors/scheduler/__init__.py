"""The scheduler actor: triggers into runs, runs into outcomes, cancellation, timeouts, recovery."""

from actors.scheduler.actor import Scheduler

__all__ = ["Scheduler"]
