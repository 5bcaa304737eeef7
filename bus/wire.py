"""The base of message bodies that other versions and outside clients read: requests, answers, event data.

A `WireModel` is frozen and tolerates keys it does not know (a newer sender may add some; messages live
for days in streams). Its JSON leaves out the fields named in `omit_defaults` while they hold their
default, so a model can keep the exact shape a message has always had on the wire (``{"error": ...}``
alone, or ``{"run_id": ..., "status": ...}`` without ``"error": null``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class WireModel(BaseModel):
    """A message body: frozen, lenient about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Fields left out of the JSON while they hold their default value (by a `SparseWireModel`).
    omit_defaults: ClassVar[frozenset[str]] = frozenset()

    def _on_the_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        """The JSON object as sent: without the `omit_defaults` fields at their default (a subclass may drop more)."""
        fields = type(self).model_fields
        for name in self.omit_defaults:
            if getattr(self, name) == fields[name].get_default(call_default_factory=True):
                data.pop(name, None)
        return data


class SparseWireModel(WireModel):
    """A message body whose JSON leaves fields out (`omit_defaults`, `_on_the_wire`).

    Kept apart from `WireModel`: the wrapping serializer runs in Python, which the bodies sent at every
    step (most event data) do not pay for.
    """

    @model_serializer(mode="wrap")
    def _sparse(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return self._on_the_wire(data) if isinstance(data, dict) else data


class Empty(WireModel):
    """A body with nothing to say: ``{}`` (a ping, a drain order)."""
