"""The transports shared by everything in a process, one per URL: a web process sends
priority mail over the same SMTP connections request after request (the article's third
cause of slow requests is a new connection per e-mail). Each is opened on first use and
closed at exit (``shared_transport(url)``; ``close_all()``)."""

from __future__ import annotations

from mailspool._backends import OpenBackends
from mailspool.transports import open_transport
from mailspool.transports.base import Transport

__all__ = ["close_all", "shared_transport"]

_open: OpenBackends[Transport] = OpenBackends(open_transport)
shared_transport = _open.get
close_all = _open.close_all
