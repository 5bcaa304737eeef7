"""The LLM gateway actor: the only holder of provider keys; litellm, the mock model, budgets, record and replay."""

from actors.llm.backend import LLMBackend
from actors.llm.cassette import Cassette
from actors.llm.gateway import LLMGateway
from actors.llm.mock import MockScript

__all__ = ["Cassette", "LLMBackend", "LLMGateway", "MockScript"]
