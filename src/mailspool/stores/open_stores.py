"""The stores shared by everything in a process, one per URL: a web process writes its
batches over one S3 client and its connection pool, request after request. Each is
opened on first use and closed at exit (``shared_store(url)``; ``close_all()``)."""

from __future__ import annotations

from mailspool._backends import OpenBackends
from mailspool.stores import open_store
from mailspool.stores.base import Store

__all__ = ["close_all", "shared_store"]

_open: OpenBackends[Store] = OpenBackends(open_store)
shared_store = _open.get
close_all = _open.close_all
