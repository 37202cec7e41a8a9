"""``quarantine/``: what cannot be delivered, kept as it was found beside its error.

``quarantine/<name>`` holds the bytes, ``<name>.error.json`` a ``QuarantineError``
(``spool.records``). Both are written before the original is removed: a crash in
between leaves it in both places, and the next look at the queue moves it again.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailspool.spool import layout
from mailspool.spool.records import QuarantineError
from mailspool.stores.base import ObjectInfo, Store

__all__ = ["quarantine", "quarantined_files"]


def quarantine(
    store: Store, key: str, data: bytes, error: QuarantineError, target: str | None = None
) -> str:
    """Move ``key`` (holding ``data``) into ``quarantine/`` (at ``target``, or beside
    the batch files) with its error; the key written."""
    target = target or layout.quarantine_key(key)
    store.put(target, data)
    store.put(layout.error_key(target), error.encode())
    store.delete(key)
    return target


def quarantined_files(store: Store) -> Iterator[ObjectInfo]:
    """The files set aside in ``quarantine/``, in key order, without their errors."""
    return (info for info in store.list(layout.QUARANTINE) if not layout.is_error_key(info.key))
