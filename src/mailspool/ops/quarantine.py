"""Operator actions on ``quarantine/``: batch files the worker could not read.

A quarantined file keeps its name (``<batch id>.json``) and has its error beside it
(``<name>.error.json``). The id the commands take is the batch id. ``requeue`` puts a
file back in ``queue/`` once it reads as a batch (fixed in place, or replaced by a fixed
copy); ``delete`` drops it and its error for good.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import islice

from mailspool.errors import InvalidRecord, KeyNotFound, Undecryptable
from mailspool.ops.status import email_count
from mailspool.spool import batch as batch_format
from mailspool.spool import layout
from mailspool.spool.json_fields import json_object
from mailspool.spool.quarantine import quarantined_files
from mailspool.spool.records import QuarantineError
from mailspool.spool.sealed_store import stored_bytes
from mailspool.stores.base import Store

__all__ = [
    "QuarantinedFile",
    "delete_quarantined",
    "list_quarantined",
    "requeue_quarantined",
    "show_quarantined",
]


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    """One file of ``quarantine/``: its id, key, size, e-mails (1 if unreadable), and
    the error beside it with its time (None where there is none to read)."""

    id: str
    key: str
    size: int
    emails: int
    error: str | None
    quarantined_at: str | None

    @property
    def name(self) -> str:
        """The file's name in ``quarantine/``."""
        return self.key.removeprefix(layout.QUARANTINE)

    def as_dict(self) -> dict[str, object]:
        """Every field but the key, which the id names already."""
        return {name: value for name, value in asdict(self).items() if name != "key"}


def list_quarantined(store: Store, limit: int | None = None) -> list[QuarantinedFile]:
    """The quarantined files in key order, the first ``limit`` of them if given."""
    files = islice(quarantined_files(store), limit)
    return [_describe(store, info.key, info.size) for info in files]


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
    """The file's bytes; a sealed file that does not open (why it is here), as stored."""
    try:
        return store.get(key)
    except KeyNotFound:
        raise KeyNotFound(quarantine_id) from None
    except Undecryptable:
        return stored_bytes(store, key)


def _remove(store: Store, key: str) -> None:
    store.delete(layout.error_key(key))
    store.delete(key)


def _describe(store: Store, key: str, size: int) -> QuarantinedFile:
    error, quarantined_at = _error(store, key)
    return QuarantinedFile(
        id=layout.batch_id_from_key(key),
        key=key,
        size=size,
        emails=email_count(store, key, default=1),
        error=error,
        quarantined_at=quarantined_at,
    )


def _error(store: Store, key: str) -> tuple[str | None, str | None]:
    """The error beside a quarantined file and when it was written; of a record that
    does not read whole (written by hand, or by another program), its ``error`` alone."""
    error_key = layout.error_key(key)
    try:
        data = store.get(error_key)
    except KeyNotFound:
        return None, None
    except Undecryptable as err:  # sealed with a key no longer listed
        return str(err), None
    try:
        record = QuarantineError.decode(data, source=error_key)
    except InvalidRecord:
        return _error_text(data, error_key), None
    return record.error, record.quarantined_at


def _error_text(data: bytes, error_key: str) -> str | None:
    try:
        text = json_object(data, error_key).get("error")
    except InvalidRecord:
        return None
    return text if isinstance(text, str) else None
