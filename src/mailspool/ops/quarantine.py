"""Operator actions on ``quarantine/``: batch files the worker could not read.

A quarantined file keeps its name (``<batch id>.json``) and has its error beside it
(``<name>.error.json``). The id the commands take is the batch id. ``requeue`` puts a
file back in ``queue/`` once it reads as a batch (fixed in place, or replaced by a fixed
copy); ``delete`` drops it and its error for good.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailspool.errors import InvalidRecord, KeyNotFound
from mailspool.ops.status import email_count
from mailspool.spool import batch as batch_format
from mailspool.spool import layout
from mailspool.spool.records import QuarantineError
from mailspool.stores.base import Store

__all__ = [
    "QuarantinedFile",
    "delete_quarantined",
    "list_quarantined",
    "requeue_quarantined",
    "show_quarantined",
]

_ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    """One file of ``quarantine/``: its id, size, e-mails (1 if unreadable) and error."""

    id: str
    key: str
    size: int
    emails: int
    error: QuarantineError | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "size": self.size,
            "emails": self.emails,
            "error": None if self.error is None else self.error.error,
            "quarantined_at": None if self.error is None else self.error.quarantined_at,
        }


def list_quarantined(store: Store) -> list[QuarantinedFile]:
    return [
        _describe(store, info.key, info.size)
        for info in store.list(layout.QUARANTINE)
        if not info.key.endswith(_ERROR_SUFFIX)
    ]


def show_quarantined(store: Store, quarantine_id: str) -> tuple[QuarantinedFile, bytes]:
    """The file's description and its bytes, or KeyNotFound naming the id."""
    key = _key(quarantine_id)
    data = _get(store, key, quarantine_id)
    return _describe(store, key, len(data)), data


def requeue_quarantined(store: Store, quarantine_id: str, fixed: bytes | None = None) -> str:
    """Queue the file again (``fixed``: its corrected content), once it reads as a batch.

    InvalidBatch (naming the file, the e-mail and the field) leaves everything as it was.
    The queued copy is written before the quarantined one is removed: a crash in between
    leaves the file in both places, never in neither.
    """
    key = _key(quarantine_id)
    data = _get(store, key, quarantine_id)  # only a quarantined file can be re-queued
    if fixed is not None:
        data = fixed
    batch_format.decode(data, source=key)
    queue_key = layout.queue_key(quarantine_id)
    store.put(queue_key, data)
    _remove(store, key)
    return queue_key


def delete_quarantined(store: Store, quarantine_id: str) -> None:
    """Drop a quarantined file and its error, or KeyNotFound naming the id."""
    key = _key(quarantine_id)
    _get(store, key, quarantine_id)
    _remove(store, key)


def _key(quarantine_id: str) -> str:
    name = quarantine_id.removesuffix(".json")
    if not name or "/" in name or name.startswith("."):
        raise KeyNotFound(quarantine_id)
    return f"{layout.QUARANTINE}{name}.json"


def _get(store: Store, key: str, quarantine_id: str) -> bytes:
    try:
        return store.get(key)
    except KeyNotFound:
        raise KeyNotFound(quarantine_id) from None


def _remove(store: Store, key: str) -> None:
    store.delete(layout.quarantine_error_key(key))
    store.delete(key)


def _describe(store: Store, key: str, size: int) -> QuarantinedFile:
    return QuarantinedFile(
        id=layout.batch_id_from_key(key),
        key=key,
        size=size,
        emails=email_count(store, key, default=1),
        error=_error(store, key),
    )


def _error(store: Store, key: str) -> QuarantineError | None:
    error_key = layout.quarantine_error_key(key)
    try:
        return QuarantineError.decode(store.get(error_key), source=error_key)
    except (KeyNotFound, InvalidRecord):
        return None
