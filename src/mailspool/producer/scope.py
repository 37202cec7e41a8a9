"""The request scope: deferred e-mails wait here until the request ends, one buffer per
request (safe for threads and async code), written in one go after the response.

``with mailspool.request():`` (or ``async with``) opens a buffer held in a
``contextvars.ContextVar``: every thread and every asyncio task has its own, so
concurrent requests never see each other's mail, and the tasks a request starts share
its buffer (they inherit its context). At exit the buffer is written to the store, one
file per meta group. A scope opened inside another joins it: the outer one writes.

One rule for a request that failed, whatever the framework: when the body raises, or
the response is a 5xx (``respond``: most frameworks turn a view's exception into a 500
before the middleware sees it), ``on_error`` decides: ``"discard"`` (the default: the
work the mail announces most likely did not happen) or ``"write"`` (keep it, since
``send_mail`` returned True).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from contextvars import ContextVar, Token
from types import TracebackType

from mailspool.config import Settings
from mailspool.errors import ConfigurationError
from mailspool.message import Message
from mailspool.producer.fallback import write_messages
from mailspool.spool.sealed_store import sealed
from mailspool.stores.base import Store
from mailspool.stores.open_stores import shared_store
from mailspool.tracing import stamped

__all__ = ["RequestScope", "current_scope", "enqueue", "request", "settings_here"]

log = logging.getLogger("mailspool")
_current: ContextVar[RequestScope | None] = ContextVar("mailspool_request_scope", default=None)


def current_scope() -> RequestScope | None:
    """The scope of the running request, or None outside any."""
    return _current.get()


def settings_here(settings: Settings | None = None) -> Settings:
    """The settings given; else the running request scope's (its glue loaded them once
    for the request); else loaded now, for a call that is itself the entry point: the
    public API used outside any framework and scope (a script, a task)."""
    if settings is not None:
        return settings
    scope = current_scope()
    return scope.settings if scope is not None else Settings.load()


def enqueue(messages: Sequence[Message], settings: Settings | None = None) -> list[str]:
    """The one way deferred e-mail is queued: into the running request's scope, or,
    outside any (a script, a task, a management command), written at once with the
    same bounded write, retries and fallback store as a scope's end. Returns the keys
    written now (none inside a scope, which writes when it ends)."""
    scope = current_scope()
    if scope is not None:
        for message in messages:
            scope.add(message)
        return []
    settings = settings_here(settings)
    return write_messages(
        sealed(shared_store(settings.store), settings.encryption_key), messages, settings
    )


class RequestScope:
    """Buffers deferred e-mails; writes them when the scope ends. See the module doc."""

    def __init__(
        self,
        *,
        store: Store | str | None = None,
        settings: Settings | None = None,
        on_error: str | None = None,
    ) -> None:
        self.settings = settings_here(settings)  # a scope inside another: the outer's
        self.on_error = on_error or self.settings.on_error
        self._failed_response = False
        if self.on_error not in ("write", "discard"):
            raise ConfigurationError(
                f"on_error must be 'write' or 'discard', not {self.on_error!r}"
            )
        self._store = store
        self._messages: list[Message] = []
        self._lock = threading.Lock()
        self._token: Token[RequestScope | None] | None = None
        self._outer: RequestScope | None = None
        self.keys: list[str] = []

    @property
    def store(self) -> Store:
        if isinstance(self._store, Store):
            return self._store
        return sealed(
            shared_store(self._store or self.settings.store), self.settings.encryption_key
        )

    def add(self, message: Message) -> None:
        """Buffer one deferred e-mail until the scope ends, with the trace context of
        the span running now (the request's; the write comes later, maybe outside it)."""
        if self._outer is not None:
            self._outer.add(message)
            return
        with self._lock:
            self._messages.extend(stamped((message,)))

    def __len__(self) -> int:
        return len(self._messages)

    def discard(self) -> int:
        """Drop everything buffered; return how many e-mails were dropped."""
        with self._lock:
            dropped, self._messages = len(self._messages), []
        return dropped

    def flush(self) -> list[str]:
        """Write everything buffered now; return the keys written.

        A failing store costs at most ``MAILSPOOL_WRITE_TIMEOUT`` seconds: then the
        batches go to the fallback store (see ``mailspool.producer.fallback``).
        """
        with self._lock:
            messages, self._messages = self._messages, []
        if not messages:
            return []
        keys = write_messages(self.store, messages, self.settings)
        self.keys.extend(keys)
        return keys

    def respond(self, status: int) -> None:
        """The response's status code: a 5xx counts as a failed request (``on_error``)."""
        if status >= 500:
            self._failed_response = True

    def conclude(self) -> None:
        """Write (or, for a failed request, drop as ``on_error`` says) what is buffered
        now: for middleware that writes before the response ends."""
        self._finish(failed=False)

    def _finish(self, failed: bool) -> None:
        if (failed or self._failed_response) and self.on_error == "discard":
            dropped = self.discard()
            if dropped:
                log.info("request failed: discarded %d deferred e-mail(s)", dropped)
            return
        self.flush()

    # -- context managers ------------------------------------------------------------------

    def __enter__(self) -> RequestScope:
        self._outer = _current.get()
        self._token = _current.set(self._outer or self)
        return self

    def _leave(self) -> bool:
        """Restore the context; True if this scope is the outermost one, which writes."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        return self._outer is None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._leave():
            self._finish(failed=exc_type is not None)

    async def __aenter__(self) -> RequestScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._leave():  # the write may fsync or go to S3: keep the loop free
            await asyncio.to_thread(self._finish, exc_type is not None)


def request(
    *,
    store: Store | str | None = None,
    settings: Settings | None = None,
    on_error: str | None = None,
) -> RequestScope:
    """A request scope, for ``with`` or ``async with``. See ``RequestScope``."""
    return RequestScope(store=store, settings=settings, on_error=on_error)
