"""Compare-and-swap of one pydantic record in a JetStream key-value bucket: the one loop every store uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from configs.errors import ActorError

M = TypeVar("M", bound=BaseModel)


async def compare_and_swap(
    kv: KeyValue,
    key: str,
    model: type[M],
    change: Callable[[M], M | None],
    *,
    missing: Callable[[], M] | None = None,
    known: tuple[M, int] | None = None,
    attempts: int = 100,
    what: str = "record",
) -> tuple[M | None, bool]:
    """Apply `change` to the record at `key`, retrying when another writer got there first.

    Args:
        change: Gets the current record, returns the new one or None to leave it as it is.
        missing: The record to start from when the key does not exist (it is then created);
            without it a missing key is left alone.
        known: A record and its revision just read, to save the first read.

    Returns:
        The record as it stands afterwards (None when the key is missing and `missing` is not given),
        and whether `change` wrote it.

    Raises:
        ActorError: the record kept changing under us for `attempts` tries.
    """
    current = known
    for _ in range(attempts):
        if current is None:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                if missing is None:
                    return None, False
                current = (missing(), 0)  # revision 0: create it
            else:
                current = (model.model_validate_json(entry.value or b"{}"), entry.revision or 0)
        record, revision = current
        new = change(record)
        if new is None:
            return record, False
        data = new.model_dump_json().encode()
        try:
            if revision == 0:
                await kv.create(key, data)
            else:
                await kv.update(key, data, last=revision)
        except KeyWrongLastSequenceError:
            current = None
            continue
        return new, True
    raise ActorError(f"{what} {key} kept changing")
