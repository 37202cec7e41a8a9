"""The stores shared by everything in a process, one per URL.

A web process writes its batches over one S3 client and its connection pool, request
after request; the store is opened on first use and closed at exit.
"""

from __future__ import annotations

from mailspool._backends import OpenBackends
from mailspool.stores import open_store
from mailspool.stores.base import Store

__all__ = ["close_all", "shared_store"]

_open: OpenBackends[Store] = OpenBackends(open_store)


def shared_store(url: str) -> Store:
    """The process's store for that URL, opened on first use."""
    return _open.get(url)


def close_all() -> None:
    """Close every one (at exit, and between tests)."""
    _open.close_all()
