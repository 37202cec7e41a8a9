"""E-mails sent later: a folder ordered by due time, so what is due is one listing away.

```
scheduled/<due>-<batch>.json   a batch not to be sent before <due> (one e-mail)
cancelled/<batch>.json         a batch cancelled before it was sent (one e-mail)
keys/<sha256 of key>.json      an idempotency key and its batch (``KeyRecord``)
```
``<due>`` is UTC to the microsecond (``20261129T090000000000Z``), so keys sort by due
time: ``promote_due`` lists ``scheduled/`` in order and stops at the first key not yet
due, reading only what is due (on S3, one listing page more at most). A due batch moves
to ``queue/<batch>.json``, where the worker finds it (on S3 the move is an
object-created event, so the Lambda handler sends it at once).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from mailspool.spool import layout
from mailspool.spool.keys import check_name, is_safe_name
from mailspool.stores.base import Store

__all__ = [
    "CANCELLED",
    "KEYS",
    "SCHEDULED",
    "cancelled_key",
    "due_of",
    "is_batch_location",
    "key_record_key",
    "next_due",
    "promote_due",
    "scheduled_key",
]

log = logging.getLogger("mailspool.worker")

SCHEDULED = "scheduled/"
CANCELLED = "cancelled/"
KEYS = "keys/"
_DUE = "%Y%m%dT%H%M%S%fZ"
_DUE_LENGTH = len("20261129T090000000000Z")


def scheduled_key(due: datetime, batch_id: str) -> str:
    return f"{SCHEDULED}{due.astimezone(UTC):{_DUE}}-{check_name(batch_id)}.json"


def cancelled_key(batch_id: str) -> str:
    return f"{CANCELLED}{check_name(batch_id)}.json"


def is_batch_location(location: str, batch_id: str) -> bool:
    """True if ``location`` is where the batch ``batch_id`` waits: ``queue/<id>.json`` or
    ``scheduled/<due>-<id>.json`` (a record read from the store names no other key)."""
    parsed = due_of(location)
    if parsed is not None:
        return parsed[1] == batch_id
    return is_safe_name(batch_id) and location == layout.queue_key(batch_id)


def key_record_key(key: str) -> str:
    """Where an idempotency key is recorded: its SHA-256, so any text makes a valid key."""
    return f"{KEYS}{hashlib.sha256(key.encode()).hexdigest()}.json"


def due_of(key: str) -> tuple[float, str] | None:
    """``scheduled/<due>-<batch>.json`` -> (due time, batch id); None for other names."""
    if not key.startswith(SCHEDULED):
        return None
    name = layout.batch_id_from_key(key)
    due_text, dash, batch_id = name[:_DUE_LENGTH], name[_DUE_LENGTH:][:1], name[_DUE_LENGTH + 1 :]
    if dash != "-" or not is_safe_name(batch_id):
        return None
    try:
        due = datetime.strptime(due_text, _DUE).replace(tzinfo=UTC)
    except ValueError:
        return None
    return due.timestamp(), batch_id


def _due(store: Store, now: float) -> Iterator[tuple[str, str] | float]:
    """Due (key, batch id) pairs in due order, then the next due time if any is left."""
    for key in store.keys(SCHEDULED):
        parsed = due_of(key)
        if parsed is None:  # not a name mailspool writes: left alone
            continue
        due, batch_id = parsed
        if due > now:
            yield due
            return
        yield key, batch_id


def promote_due(store: Store, now: float | None = None) -> tuple[list[str], float | None]:
    """Move every due scheduled batch into ``queue/``; return the queue keys moved and
    when the next one is due (None: nothing is scheduled). Of two processes promoting
    at once, each batch is moved by one (``Store.move``)."""
    moment = time.time() if now is None else now
    moved: list[str] = []
    next_at: float | None = None
    for found in _due(store, moment):
        if isinstance(found, float):
            next_at = found
            break
        key, batch_id = found
        if store.move(key, layout.queue_key(batch_id)):
            moved.append(layout.queue_key(batch_id))
    if moved:
        log.info("%d scheduled batch(es) due: moved to %s", len(moved), layout.QUEUE)
    return moved, next_at


def next_due(store: Store) -> float | None:
    """When the first scheduled batch is due, or None if none is scheduled."""
    for key in store.keys(SCHEDULED):
        parsed = due_of(key)
        if parsed is not None:
            return parsed[0]
    return None
