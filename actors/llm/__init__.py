"""The LLM gateway actor: the only holder of provider keys; litellm, the mock model, budgets, record and replay."""

from actors.llm.backend import LLMBackend
from actors.llm.cassette import Cassette
from actors.llm.endpoints import EndpointPolicy, declared_endpoints, parse_allowed
from actors.llm.gateway import LLMGateway
from actors.llm.mock import MockScript

__all__ = [
    "Cassette",
    "EndpointPolicy",
    "LLMBackend",
    "LLMGateway",
    "MockScript",
    "declared_endpoints",
    "parse_allowed",
]
