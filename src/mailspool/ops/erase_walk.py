"""Every object of a store, read ahead by a few threads: ``mailspool erase`` reads each
object once, and on S3 one GET at a time would take hours for a large bucket.

Objects are read in groups of at most ``_GROUP`` objects and ``_GROUP_BYTES`` bytes
(one object larger than that alone), each group while the caller works through the one
before, so memory holds two groups at most, whatever the store's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from mailspool.errors import StoreError
from mailspool.stores.base import ObjectInfo, Store

__all__ = ["Read", "read_ahead"]

_THREADS = 8
_GROUP = 32
_GROUP_BYTES = 64 << 20

#: What reading an object gave: its bytes, None (larger than the limit: not read), or
#: the store's error (``KeyNotFound``: removed meanwhile; a link or device it refuses).
Read = bytes | StoreError | None


def read_ahead(
    store: Store, infos: Iterable[ObjectInfo], limit: int
) -> Iterator[tuple[ObjectInfo, Read]]:
    """Each object with what reading it (up to ``limit`` bytes) gave, in listing order."""
    store.reserve_connections(_THREADS)
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="mailspool-erase") as pool:
        pending: list[tuple[ObjectInfo, Future[Read]]] = []
        for group in _groups(infos):
            started = [(info, pool.submit(_read, store, info, limit)) for info in group]
            for info, future in pending:
                yield info, future.result()
            pending = started
        for info, future in pending:
            yield info, future.result()


def _groups(infos: Iterable[ObjectInfo]) -> Iterator[list[ObjectInfo]]:
    group: list[ObjectInfo] = []
    size = 0
    for info in infos:
        if group and (len(group) >= _GROUP or size + info.size > _GROUP_BYTES):
            yield group
            group, size = [], 0
        group.append(info)
        size += info.size
    if group:
        yield group


def _read(store: Store, info: ObjectInfo, limit: int) -> Read:
    if info.size > limit:
        return None
    try:
        return store.get_at_most(info.key, limit, "the erasure read limit")
    except StoreError as err:  # KeyNotFound included: removed meanwhile
        return err
