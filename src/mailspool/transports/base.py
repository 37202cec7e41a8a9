"""The transport: how one e-mail leaves. One method, ``send``, plus ``close``.

``send(message, message_id=...)`` delivers one ``Message`` and returns a ``Receipt``, or
raises ``TransientError`` (may succeed later) or ``PermanentError`` (never will, as it
is); ``send_rate()`` is the provider's own limit (SES: the account's MaxSendRate), None
by default. Every transport is safe to call from several threads at once: a connection-based
transport keeps a pool of open connections and reuses them, so a worker with N threads
uses N connections and a web process reuses its connection across requests.
``tests/transport_contract.py`` runs the same tests on every transport.

Some providers take many e-mails that share their content in one call (SES
``SendBulkEmail``): such a transport gives those e-mails equal ``bulk_key``s and sends up
to ``max_bulk`` of them at once with ``send_bulk``, which answers for each e-mail on its
own. SMTP sends a call's e-mails in a row over one connection (``bulk_sequential``),
each envelope pipelined behind the previous content, and answers each e-mail as its
answer comes (``send_each``). Every other transport keeps the defaults: no key, one ``send`` per e-mail.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from mailspool._backends import Backend
from mailspool.errors import DeliveryError
from mailspool.message import Message

__all__ = ["Answered", "BulkEntry", "BulkResult", "Receipt", "SendQuota", "Transport"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a provider said when it accepted a message.

    ``message_id`` is the provider's id (SES) or the Message-ID header (SMTP, files).
    ``refused`` maps each recipient that the provider refused while accepting the others
    to its answer, e.g. ``{"x@example.com": "550 5.1.1 no such user"}``; callers record
    those as failed so that nothing is silently dropped. ``via`` and ``unanswered`` are
    set by a failover chain only.
    """

    message_id: str
    refused: Mapping[str, str] = field(default_factory=dict)
    #: The member of a failover chain that accepted it (``transports.failover``).
    via: str | None = None
    #: Members that took its content earlier without answering: it may be there too.
    unanswered: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One e-mail of a bulk call, with the Message-ID ``send`` would be given."""

    message: Message
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendQuota:
    """A provider's 24-hour quota as it tells it: recipients counted over the last 24
    hours (every sender of the account) and the most it takes in 24 hours."""

    sent_last_24h: float
    max_24h: float


#: What a bulk call says of one e-mail: accepted, or the error a ``send`` would raise.
BulkResult = Receipt | DeliveryError

#: Told each e-mail's result of ``send_each``: its position in the entries, the result.
Answered = Callable[[int, BulkResult], None]


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

    def send_quota(self) -> SendQuota | None:
        """The provider's 24-hour quota now (asked each time), or None if it has none
        or will not say (``delivery.quota``)."""
        return None

    #: At most this many e-mails go in one ``send_bulk`` call.
    max_bulk: int = 1
    #: ``send_bulk`` sends its e-mails one after another (SMTP over one connection), not
    #: in one request: any e-mails may go together, in calls spread over the senders.
    bulk_sequential: bool = False

    def bulk_key(self, message: Message) -> Hashable | None:
        """E-mails with equal keys may share one ``send_bulk`` call; None (always, by
        default) when this one must go alone through ``send``."""
        return None

    def send_each(self, entries: Sequence[BulkEntry], answered: Answered) -> None:
        """Send e-mails of one ``bulk_key``, giving each one's result to ``answered``
        (with its position in ``entries``). A transport that sends them one after
        another (``bulk_sequential``) answers each as soon as it is known, so that its
        outcome is recorded before the next e-mail leaves; by default, ``send_bulk``'s
        results in order (raising as it raises)."""
        for position, result in enumerate(self.send_bulk(entries)):
            answered(position, result)

    def send_bulk(self, entries: Sequence[BulkEntry]) -> list[BulkResult]:
        """Send e-mails of one ``bulk_key``; one result per entry, in order. Raises a
        ``DeliveryError`` only when the whole call failed (nothing was sent). By default
        each e-mail goes through ``send``."""
        results: list[BulkResult] = []
        for entry in entries:
            try:
                results.append(self.send(entry.message, message_id=entry.message_id))
            except DeliveryError as err:
                results.append(err)
        return results
