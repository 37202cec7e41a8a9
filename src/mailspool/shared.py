"""Stores and transports shared by everything in a process, one per URL.

A web process sends priority mail over the same SMTP connections request after request
(the article's third cause of slow requests is a new connection per e-mail), and writes
batches over one S3 client with its connection pool. Both are opened on first use and
closed at exit.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import TypeVar

from mailspool.stores.base import Store
from mailspool.transports.base import Transport

__all__ = ["close_all", "shared_store", "shared_transport"]

B = TypeVar("B", Store, Transport)

_lock = threading.Lock()
_stores: dict[str, Store] = {}
_transports: dict[str, Transport] = {}


def shared_store(url: str) -> Store:
    """The process's store for that URL, opened on first use."""
    from mailspool.stores import open_store

    return _shared(_stores, url, open_store)


def shared_transport(url: str) -> Transport:
    """The process's transport for that URL; its connections stay open between sends."""
    from mailspool.transports import open_transport

    return _shared(_transports, url, open_transport)


def _shared(opened: dict[str, B], url: str, open_url: Callable[[str], B]) -> B:
    with _lock:
        backend = opened.get(url)
        if backend is None:
            backend = opened[url] = open_url(url)
        return backend


def close_all() -> None:
    """Close every shared store and transport (at exit, and between tests)."""
    with _lock:
        items: list[Store | Transport] = [*_stores.values(), *_transports.values()]
        _stores.clear()
        _transports.clear()
    for item in items:
        item.close()


atexit.register(close_all)
