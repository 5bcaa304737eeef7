"""The observer actor: every ended run becomes a row of run history and an MLflow trace."""

from actors.observer.actor import Observer, TraceSink
from actors.observer.summary import RunTrace, summarize

__all__ = ["Observer", "RunTrace", "TraceSink", "summarize"]
