"""Pluggable backends (stores, transports): what they share, imported on first use.

A backend is named by a URL, may hold connections or files, and is closed by ``close()``
or by leaving a ``with`` block. Its module is imported only when a URL needs it, so a
missing extra names what to install.

Clients of AWS services come from boto3's default session (its loaded models are reused,
and it honours ``boto3.setup_default_session``). Making a client from a session is not
thread-safe, so every client mailspool makes, in the S3 store, the SES transport or the
AWS tools, is made by ``boto3_client``, under the one ``BOTO3_SESSION_LOCK``.
"""

from __future__ import annotations

import atexit
import importlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from mailspool.errors import ConfigurationError, MissingDependency

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = ["BOTO3_SESSION_LOCK", "Backend", "OpenBackends", "boto3_client", "load_backend"]

BOTO3_SESSION_LOCK = threading.Lock()


class Backend:
    """What every store and transport shares: its URL, ``close()`` and ``with``."""

    url: str

    def close(self) -> None:
        """Release connections and file handles (nothing, unless the backend holds some)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


#: scheme -> (what needs it, the extra to install, the top-level modules it provides)
Extras = Mapping[str, tuple[str, str, frozenset[str]]]


def load_backend(backends: Mapping[str, str], extras: Extras, scheme: str) -> Any:
    """The class ``backends[scheme]`` names (``"module:Class"``), imported now."""
    module_name, _, name = backends[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        extra = extras.get(scheme)
        if extra is None or (err.name or "").partition(".")[0] not in extra[2]:
            raise
        raise MissingDependency(extra[0], extra[1]) from err
    return getattr(module, name)


def boto3_client(
    service: str,
    region: str | None = None,
    config: Config | None = None,
    *,
    user: str,
    endpoint_url: str | None = None,
) -> Any:
    """A client of ``service`` from boto3's default session, made under the session lock.

    ``user`` names what needs it: in ``MissingDependency`` without the ``aws`` extra, and
    in the ``ConfigurationError`` that a botocore error (no region, a bad endpoint) becomes.
    """
    try:
        import boto3
        from botocore.exceptions import BotoCoreError
    except ImportError as err:
        raise MissingDependency(user, "aws") from err
    make: Callable[..., Any] = boto3.client  # the stubs type each service by its literal name
    try:
        with BOTO3_SESSION_LOCK:
            return make(service, region_name=region, config=config, endpoint_url=endpoint_url)
    except BotoCoreError as err:
        raise ConfigurationError(f"cannot make the {service} client {user} needs: {err}") from err


B = TypeVar("B", bound=Backend)


class OpenBackends(Generic[B]):
    """Backends shared by everything in a process, one per URL, opened on first use and
    closed at exit (``stores.open_stores``, ``transports.open_transports``)."""

    def __init__(self, open_url: Callable[[str], B]) -> None:
        self._open_url = open_url
        self._lock = threading.Lock()
        self._opened: dict[str, B] = {}
        atexit.register(self.close_all)

    def get(self, url: str) -> B:
        with self._lock:
            backend = self._opened.get(url)
            if backend is None:
                backend = self._opened[url] = self._open_url(url)
            return backend

    def close_all(self) -> None:
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
        for backend in opened:
            backend.close()
