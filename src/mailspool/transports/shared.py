"""The transports shared by everything in a process, one per URL.

A web process sends priority mail over the same SMTP connections request after request
(the article's third cause of slow requests is a new connection per e-mail); the
transport is opened on first use and closed at exit.
"""

from __future__ import annotations

from mailspool._backends import OpenBackends
from mailspool.transports import open_transport
from mailspool.transports.base import Transport

__all__ = ["close_all", "shared_transport"]

_open: OpenBackends[Transport] = OpenBackends(open_transport)


def shared_transport(url: str) -> Transport:
    """The process's transport for that URL; its connections stay open between sends."""
    return _open.get(url)


def close_all() -> None:
    """Close every one (at exit, and between tests)."""
    _open.close_all()
