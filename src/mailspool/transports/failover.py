"""A failover chain: ``failover(ses://eu-west-1 smtp://relay.example:587)``.

One transport made of others, tried in order for each e-mail. An e-mail moves to the
next member only when the previous one provably did not take it: the member raised
``TransportUnavailable`` (connection refused, TLS failure or a timeout before the
content, 421/454, throttling) or ``SendingPaused`` (SES paused or suspended the
account). Every other outcome ends the e-mail's journey through the chain, as it would
with that member alone: a refusal (``PermanentError``), a transient answer, and above
all ``ContentUnanswered`` (the content left and no answer came: the e-mail may have
arrived, and sending it elsewhere could deliver it twice).

Each member has a circuit breaker: once it did not take an e-mail, it is skipped for
``retry_period`` seconds, then one e-mail tries it again (half-open); an answer closes
the breaker. When no member takes the e-mail, the chain raises what a single transport
would (``TransportUnavailable``, or ``SendingPaused`` when every member is paused), so
the worker pauses delivery and spends no attempt (``delivery.outage``).

The receipt names the member that accepted (``Receipt.via``) and the members that
earlier took the same e-mail (by its Message-ID) without answering
(``Receipt.unanswered``): the ledger records both, so a duplicate can only be where the
ledger says one may be. That memory is this process's, bounded to the latest
``_REMEMBERED`` e-mails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mailspool.errors import (
    ConfigurationError,
    ContentUnanswered,
    DeliveryError,
    MissingDependency,
    SendingPaused,
    TransientError,
    TransportUnavailable,
)
from mailspool.message import Message
from mailspool.transports.base import Receipt, Transport
from mailspool.transports.failover_url import (
    DEFAULT_RETRY_PERIOD,
    Chain,
    format_chain,
    member_label,
    parse_chain,
)

__all__ = ["Breaker", "FailoverTransport", "Member"]

log = logging.getLogger("mailspool.transport")

#: E-mails whose unanswered members are remembered (about 100 bytes each).
_REMEMBERED = 10_000
#: What did not take an e-mail: the member is skipped for its retry period.
_NOT_TAKEN = (TransportUnavailable, SendingPaused)


class Breaker:
    """One member's circuit breaker; thread-safe, ``clock`` in seconds (injectable)."""

    def __init__(self, retry_period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._period = retry_period
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        #: why the member last did not take an e-mail (None: closed)
        self.last: DeliveryError | None = None

    def admits(self) -> bool:
        """True when closed, or when the retry period has passed: then this caller is
        the one probe (the others skip the member until the probe answers)."""
        with self._lock:
            if self._open_until is None:
                return True
            now = self._clock()
            if now < self._open_until:
                return False
            self._open_until = now + self._period
            return True

    def failed(self, error: DeliveryError) -> bool:
        """The member did not take an e-mail: skip it for the retry period. True when
        this opens the breaker (it was closed)."""
        with self._lock:
            opened = self._open_until is None
            self._open_until = self._clock() + self._period
            self.last = error
            return opened

    def give_back(self) -> None:
        """The e-mail never reached the member (it was found unsendable first): a probe
        it was lets the next e-mail probe at once."""
        with self._lock:
            if self._open_until is not None:
                self._open_until = min(self._open_until, self._clock())

    def answered(self) -> None:
        """The member answered (took or refused an e-mail): close the breaker."""
        with self._lock:
            self._open_until = None
            self.last = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until is not None


@dataclass(frozen=True, slots=True)
class Member:
    """A transport of the chain, the label the ledger records, and its breaker."""

    transport: Transport
    label: str
    breaker: Breaker


class FailoverTransport(Transport):
    """Sends each e-mail through the first member that takes it (see the module)."""

    def __init__(
        self,
        members: Sequence[Transport],
        *,
        retry_period: float = DEFAULT_RETRY_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not members:
            raise ConfigurationError("a failover chain needs at least one transport")
        self.members = tuple(
            Member(transport, member_label(transport.url), Breaker(retry_period, clock))
            for transport in members
        )
        # as the members show themselves: no password (the worker logs and records it)
        self.url = format_chain(Chain(tuple(t.url for t in members), retry_period))
        self._unanswered = _Unanswered(_REMEMBERED)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FailoverTransport:
        """Open every member of ``failover(URL URL ...)[?retry_period=S]``; ``options``:
        ``retry_period`` (wins over the URL's) and ``clock``."""
        from mailspool.transports import open_transport  # the package opens this module

        chain = parse_chain(url)
        accepted = {"retry_period", "clock"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)} for a failover chain; "
                f"accepted: {', '.join(sorted(accepted))}"
            )
        opened: list[Transport] = []
        try:
            for position, member in enumerate(chain.members, 1):
                opened.append(_open_member(open_transport, member, position))
        except BaseException:
            for transport in opened:
                transport.close()
            raise
        options.setdefault("retry_period", chain.retry_period)
        return cls(opened, **options)

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Send through the first member that takes the e-mail (see the module)."""
        key = (message.header("Message-ID") or message_id or "").strip()
        for member in self.members:
            if not member.breaker.admits():
                continue
            try:
                receipt = member.transport.send(message, message_id=message_id)
            except _NOT_TAKEN as err:
                if member.breaker.failed(err):
                    log.warning(
                        "%s did not take an e-mail (%s): skipped for its retry period",
                        member.label,
                        err.response,
                    )
                continue
            except ContentUnanswered:
                self._unanswered.note(key, member.label)
                raise
            except DeliveryError:
                member.breaker.answered()
                raise
            except BaseException:  # InvalidMessage, a bug: says nothing of the member
                member.breaker.give_back()
                raise
            member.breaker.answered()
            return replace(receipt, via=member.label, unanswered=self._unanswered.take(key))
        raise self._none_took()

    def _none_took(self) -> TransientError:
        """What no member taking the e-mail means: an outage of the whole chain."""
        said = [
            f"{member.label}: {member.breaker.last.response}"
            for member in self.members
            if member.breaker.last is not None
        ]
        text = f"no transport of {self.url} took the e-mail ({'; '.join(said)})"
        if all(isinstance(m.breaker.last, SendingPaused) for m in self.members):
            return SendingPaused(text)
        return TransportUnavailable(text)

    def send_rate(self) -> float | None:
        """The first member's limit: the chain's rate is its primary's."""
        return self.members[0].transport.send_rate()

    def close(self) -> None:
        for member in self.members:
            member.transport.close()


def _open_member(open_transport: Callable[[str], Transport], url: str, position: int) -> Transport:
    """Open member ``position``; a wrong URL says which member it is."""
    try:
        return open_transport(url)
    except MissingDependency:
        raise
    except ConfigurationError as err:
        raise ConfigurationError(f"member {position} of the failover chain: {err}") from err


class _Unanswered:
    """Message-ID -> the members that took its content without answering; bounded."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._members: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, key: str, label: str) -> None:
        if not key:
            return
        with self._lock:
            known = self._members.pop(key, ())
            self._members[key] = known if label in known else (*known, label)
            while len(self._members) > self._limit:
                self._members.popitem(last=False)

    def take(self, key: str) -> tuple[str, ...]:
        if not key:
            return ()
        with self._lock:
            return self._members.pop(key, ())
