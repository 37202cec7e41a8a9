"""Delivery into a list, for tests: ``memory:`` (private) or ``memory:NAME`` (shared).

``memory:NAME`` gives the same transport to every caller in the process, so a test and
a worker that opened the URL on its own see the same ``outbox`` and the same faults.
``memory:`` gives a new, private transport each time.

It is also a stub for faults: ``fail_next(error, times=n)`` makes the next ``n`` sends
raise ``error`` (a ``TransientError`` to test retries, a ``PermanentError`` to test the
failed path), and ``on_send(hook)`` calls ``hook(message)`` before each send, which may
raise or record. A send that raises records nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, ClassVar

from mailspool.errors import ConfigurationError
from mailspool.message import Message
from mailspool.transports._common import prepare
from mailspool.transports.base import Receipt, Transport

__all__ = ["MemoryTransport", "SentMessage"]

SendHook = Callable[[Message], None]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the memory transport accepted, as a server would have seen it."""

    envelope_sender: str
    envelope_recipients: tuple[str, ...]
    data: bytes
    message: Message
    message_id: str

    def parsed(self) -> EmailMessage:
        """The rendered bytes as a stdlib message (``policy.default``)."""
        return BytesParser(policy=policy.default).parsebytes(self.data)


class MemoryTransport(Transport):
    """Keeps every message it is given; can be told to fail. Thread-safe."""

    _named: ClassVar[dict[str, MemoryTransport]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str | None = None) -> None:
        """A private transport; use ``MemoryTransport.named(name)`` for a shared one."""
        self.name = name
        self.url = f"memory:{name or ''}"
        self._lock = threading.Lock()
        self._outbox: list[SentMessage] = []
        self._faults: deque[BaseException] = deque()
        self._hook: SendHook | None = None

    @classmethod
    def named(cls, name: str) -> MemoryTransport:
        """The process's transport called ``name``, created on first use."""
        with cls._named_lock:
            transport = cls._named.get(name)
            if transport is None:
                transport = cls._named[name] = cls(name)
            return transport

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryTransport:
        """``memory:`` for a new private transport, ``memory:NAME`` for the shared one."""
        scheme, colon, name = url.partition(":")
        if scheme.lower() != "memory" or not colon or "?" in name or "/" in name:
            raise ConfigurationError(
                f"not a memory transport URL (memory: or memory:NAME): {url!r}"
            )
        if options:
            raise ConfigurationError(
                f"the memory transport takes no options, got: {', '.join(sorted(options))}"
            )
        return cls.named(name) if name else cls()

    @property
    def outbox(self) -> list[SentMessage]:
        """What was sent so far, in order (a copy: safe to read while others send)."""
        with self._lock:
            return list(self._outbox)

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Record the message, unless a fault was planned for this send."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            hook = self._hook
        if fault is not None:
            raise fault
        if hook is not None:
            hook(message)
        outgoing = prepare(message, message_id)
        sent = SentMessage(
            envelope_sender=outgoing.sender,
            envelope_recipients=outgoing.recipients,
            data=outgoing.data,
            message=message,
            message_id=outgoing.message_id,
        )
        with self._lock:
            self._outbox.append(sent)
        return Receipt(outgoing.message_id)

    def fail_next(self, error: BaseException, times: int = 1) -> None:
        """Make the next ``times`` sends raise ``error`` (after any faults already planned)."""
        with self._lock:
            self._faults.extend([error] * times)

    def on_send(self, hook: SendHook | None) -> None:
        """Call ``hook(message)`` before every send (``None`` removes it); it may raise."""
        with self._lock:
            self._hook = hook

    def clear(self) -> None:
        """Forget the outbox, the planned faults and the hook."""
        with self._lock:
            self._outbox.clear()
            self._faults.clear()
            self._hook = None
