"""``quarantine/``: what cannot be delivered, kept as it was found beside its error.

``quarantine/<name>`` holds the bytes, ``<name>.error.json`` a ``QuarantineError``
(``spool.records``). One function sets a file aside, for every path (the worker's
refused batch, a stray key in ``queue/``): the error first, then the file, and only
then is the original removed. A crash in between leaves the original in place with its
error already written, and the next look at it quarantines it again.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailspool.spool import layout
from mailspool.spool.records import QuarantineError
from mailspool.stores.base import ObjectInfo, Store

__all__ = ["quarantine", "quarantined_files"]


def quarantine(
    store: Store,
    key: str,
    error: QuarantineError,
    *,
    data: bytes | None = None,
    target: str | None = None,
) -> str:
    """Set ``key`` aside in ``quarantine/`` (at ``target``, or beside the batch files)
    with its error; the key written. ``data``: the bytes read from it, written as the
    copy; None for a file that was not read (a link, a special file, one over the size
    limit), which is moved as it is."""
    target = target or layout.quarantine_key(key)
    store.put(layout.error_key(target), error.encode())
    if data is None:
        store.move(key, target)
    else:
        store.put(target, data)
        store.delete(key)
    return target


def quarantined_files(store: Store) -> Iterator[ObjectInfo]:
    """The files set aside in ``quarantine/``, in key order, without their errors."""
    return (info for info in store.list(layout.QUARANTINE) if not layout.is_error_key(info.key))
