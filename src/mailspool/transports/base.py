"""The transport: how one e-mail leaves. One method, ``send``, plus ``close``.

``send(message, message_id=...)`` delivers one ``Message`` and returns a ``Receipt``, or
raises ``TransientError`` (may succeed later) or ``PermanentError`` (never will, as it
is); ``send_rate()`` is the provider's own limit (SES: the account's MaxSendRate), None
by default. Every transport is safe to call from several threads at once: a connection-based
transport keeps a pool of open connections and reuses them, so a worker with N threads
uses N connections and a web process reuses its connection across requests.
``tests/transport_contract.py`` runs the same tests on every transport.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailspool._backends import Backend
from mailspool.message import Message

__all__ = ["Receipt", "Transport"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a provider said when it accepted a message.

    ``message_id`` is the provider's id (SES) or the Message-ID header (SMTP, files).
    ``refused`` maps each recipient that the provider refused while accepting the others
    to its answer, e.g. ``{"x@example.com": "550 5.1.1 no such user"}``; callers record
    those as failed so that nothing is silently dropped.
    """

    message_id: str
    refused: Mapping[str, str] = field(default_factory=dict)


class Transport(Backend, abc.ABC):
    """Delivers messages. Thread-safe; reuses its connections; ``close()`` (or leaving
    ``with transport:``) closes every open connection."""

    @abc.abstractmethod
    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Deliver one message. ``message_id`` (``<...>``) is used as its Message-ID
        unless the message has one; the worker passes a stable id so that a duplicate
        after a crash carries the same Message-ID as the original."""

    def send_rate(self) -> float | None:
        """The provider's limit in e-mails (recipients) per second, or None if it has none
        or will not say. A worker without ``MAILSPOOL_MAX_RATE`` sends at this rate."""
        return None
