"""The node worker actor: runs the steps of flows, and serves tools pinned to it."""

from actors.worker.actor import NodeWorker
from actors.worker.llm_client import BusLLMClient
from actors.worker.tool_host import RemoteToolClient, ToolHost

__all__ = ["BusLLMClient", "NodeWorker", "RemoteToolClient", "ToolHost"]
