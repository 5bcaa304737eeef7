"""The names a node's prompt can use, and the check that a whole placeholder path exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from configs._issues import closest
from configs._typeref import ANY, TypeRef

RUNTIME_ONLY_IN_MAPS = ("item", "index")


@dataclass(frozen=True)
class Unresolved:
    """Why a path does not resolve, and the closest valid name."""

    message: str
    suggestion: str | None = None


@dataclass
class Scope:
    """State field types, node input types and runtime names visible in one node."""

    state: Mapping[str, TypeRef]
    inputs: dict[str, TypeRef] = field(default_factory=dict)
    runtime: dict[str, TypeRef] = field(default_factory=dict)

    def resolve(self, path: Sequence[str], *, explicit_state: bool) -> TypeRef | Unresolved:
        """Return the type at `path`, or why it does not exist.

        A bare first segment is looked up in the node inputs, then the runtime names, then the
        state; `explicit_state` (`{state.x}`) looks only in the state. Deeper segments must exist
        in object schemas; untyped lists, dicts and objects accept any key.

        Args:
            path: The segments, without a leading `state`.
            explicit_state: The path was written with `state.`.

        Returns:
            The type, or an Unresolved explaining the problem.
        """
        first = path[0]
        ref = self._first(first, explicit_state)
        if isinstance(ref, Unresolved):
            return ref
        return walk(ref, path, "state." + first if explicit_state else first)

    def _first(self, name: str, explicit_state: bool) -> TypeRef | Unresolved:
        if explicit_state:
            if name in self.state:
                return self.state[name]
            return Unresolved(
                f"{name!r} is not a state field (state fields: {_names(self.state)})",
                closest(name, self.state),
            )
        for names in (self.inputs, self.runtime, self.state):
            if name in names:
                return names[name]
        if name == "error":
            return Unresolved("{error} is only available in a node that is another node's on_error target")
        if name in RUNTIME_ONLY_IN_MAPS:
            return Unresolved(
                f"{{{name}}} is only available in a node reached through a parallel edge (target_node) or with foreach"
            )
        candidates = [*self.inputs, *self.runtime, *self.state]
        kinds = "state field" + (", node input" if self.inputs else "") + " or runtime name"
        return Unresolved(
            f"{name!r} is not a {kinds} (state fields: {_names(self.state)}"
            + (f"; inputs: {_names(self.inputs)}" if self.inputs else "")
            + f"; runtime names: {_names(self.runtime)})",
            closest(name, candidates),
        )


def walk(ref: TypeRef, path: Sequence[str], shown: str) -> TypeRef | Unresolved:
    """Follow the segments after the first one through a type.

    Args:
        ref: The type of the first segment.
        path: All segments (the first one included).
        shown: How the first segment was written, for messages.

    Returns:
        The type at the end of the path, or an Unresolved.
    """
    for segment in path[1:]:
        if ref.kind == "any" or (ref.kind in ("list", "dict", "object") and ref.item is None and not ref.fields):
            if ref.kind == "list" and not segment.isdigit():
                return Unresolved(f"{shown} is a list; use an index such as {shown}.0, not {segment!r}")
            return ANY
        if ref.kind == "object" and ref.fields is not None:
            sub = ref.field(segment)
            if sub is None:
                names = [name for name, _ in ref.fields]
                return Unresolved(
                    f"{shown} has no field {segment!r} (its fields: {', '.join(names)})",
                    closest(segment, names),
                )
            ref = sub
        elif ref.kind == "list" and ref.item is not None:
            if not segment.isdigit():
                return Unresolved(f"{shown} is a {ref}; use an index such as {shown}.0, not {segment!r}")
            ref = ref.item
        elif ref.kind == "dict" and ref.item is not None:
            ref = ref.item
        else:
            return Unresolved(f"{shown} is a {ref}; it has no field {segment!r}")
        shown = f"{shown}.{segment}"
    return ref


def _names(names: Mapping[str, object]) -> str:
    return ", ".join(names) or "none"
