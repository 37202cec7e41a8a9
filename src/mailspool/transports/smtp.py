"""SMTP delivery (``smtp://``, ``smtps://``) over a pool of reused connections.

URL::

    smtp://[user:password@]host[:port][?starttls=auto|always|never&timeout=SECONDS
        &verify=true|false&cafile=PATH&max_connections=N&local_hostname=NAME
        &pipelining=true|false&chunking=true|false]

``smtps://`` is TLS from the first byte (port 465); ``smtp://`` (port 25) upgrades with
STARTTLS when the server offers it (``starttls=auto``), insists on it (``always``) or
never tries (``never``). User and password are percent-decoded; with a user, the
transport logs in after TLS. ``verify=false`` accepts any certificate (self-signed test
servers only); ``cafile`` trusts one more CA. ``timeout`` (30 s) bounds every socket
operation. ``local_hostname`` is the name given in EHLO; without it, this host's FQDN
(else its address literal), as ``smtplib`` finds it, looked up once per process.
``pipelining`` (true) sends MAIL FROM, every RCPT TO and DATA in one
round trip when the server advertises PIPELINING (RFC 2920, ``smtp_pipeline``);
``chunking`` (true) sends the content in that same write as ``BDAT <size> LAST`` when the
server also offers CHUNKING (RFC 3030): one round trip per e-mail, plain or TLS alike.
``send_each`` sends a run of e-mails over one connection, answering each as its answer
comes; without CHUNKING each e-mail's envelope goes behind the previous content
(``smtp_pipeline``): one round trip per e-mail there too.
``event_loop``, an option of earlier versions, is accepted and ignored: every connection
is driven by the worker's sender threads, plain or TLS alike.

Why a pool: opening a connection costs several round trips (greeting, EHLO, TLS, AUTH)
before the first message; paying them for every e-mail is the article's third cause of
slow requests. A connection returns to the pool after each send, so ten sends from one
thread use one connection and N threads use at most ``max_connections`` (10; a worker
sets it to its concurrency unless the URL gives it, see ``mailspool.delivery.factory``).
A server may close a connection while it sits idle; a pooled connection on which the
server has spoken or hung up is replaced before anything is written (a non-blocking
look at the socket, no round trip), and a send that still meets a dead connection
reconnects once and resends, but only when the failure came before the content left
(``data_started``: after 354, or just before the write that carries BDAT; undone by an
answer proving the server dropped it), so a message is never sent twice by a retry.
Connections open as sends need them, concurrently, with no probe; ``close`` QUITs every
idle one at once.

Errors: 4xx answers, dropped connections, timeouts and TLS failures are
``TransientError``; 5xx answers (a message too large included) and failed
authentication are ``PermanentError``; so is a message larger than the ``SIZE`` the
server advertises, refused before it is sent. The server's code and text are in the message
and in ``response``. A connection on which the server refused an e-mail (its sender, every
recipient, its content) carries the next one, the transaction ended with RSET; one that
raised anything else (a dropped connection, a timeout, a 421) is closed. A password never appears in an error, a log line or ``url``.
"""

from __future__ import annotations

import functools
import logging
import smtplib
import ssl
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from mailspool.errors import (
    ConfigurationError,
    DeliveryError,
    InvalidMessage,
    PermanentError,
    TransportUnavailable,
)
from mailspool.message import Message
from mailspool.transports._common import (
    Outgoing,
    check_options,
)
from mailspool.transports.base import Answered, BulkEntry, Receipt, Transport
from mailspool.transports.smtp_connection import (
    Connection,
    Envelope,
    TLSConnection,
    default_ehlo_name,
    quit_all,
    quit_connection,
)
from mailspool.transports.smtp_errors import (
    check_advertised_size,
    session_goes_on,
    translate,
)
from mailspool.transports.smtp_pipeline import Following, dropped_before_data
from mailspool.transports.smtp_url import (
    TLSContext,
    check_settings,
    host_in_url,
    url_arguments,
)

#: what came of one e-mail: the server took it, or the error ``send`` raises
Outcome = Receipt | DeliveryError | InvalidMessage

__all__ = ["ConnectionShare", "SMTPTransport"]

log = logging.getLogger(__name__)


class ConnectionShare(Protocol):
    """How many connections a transport may use now, and when its sends start and end."""

    def limit(self) -> int: ...

    def started(self) -> None: ...

    def ended(self) -> None: ...


class SMTPTransport(Transport):
    """Sends through one SMTP server, reusing up to ``max_connections`` connections."""

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        implicit_tls: bool = False,
        starttls: str | None = None,
        timeout: float = 30.0,
        verify: bool = True,
        cafile: str | None = None,
        max_connections: int = 10,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        pipelining: bool = True,
        chunking: bool = True,
    ) -> None:
        """Keyword form of the URL; ``ssl_context`` replaces ``verify`` and ``cafile``."""
        check_settings(host, username, password, implicit_tls, starttls)
        if timeout <= 0:
            raise ConfigurationError(f"SMTP timeout must be positive, not {timeout!r}")
        if max_connections < 1:
            raise ConfigurationError(f"max_connections must be at least 1, not {max_connections}")
        self.host = host
        self.port = port or (465 if implicit_tls else 25)
        self.username = username
        self._password = password
        self.implicit_tls = implicit_tls
        self.starttls = starttls or "auto"
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self.local_hostname = local_hostname
        self.pipelining = pipelining
        self.chunking = chunking
        self._tls = TLSContext(ssl_context, verify, cafile)
        scheme = "smtps" if implicit_tls else "smtp"
        user = f"{quote(username, safe='')}@" if username else ""
        self.url = f"{scheme}://{user}{host_in_url(host)}:{self.port}"
        self._where = f"SMTP server {host_in_url(host)}:{self.port}"
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._slots = threading.Condition(self._lock)
        self._in_use = 0
        self._lent = 0  # connections the sends hold (borrowed or opened), not idle
        self._share: ConnectionShare | None = None
        self._generation = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SMTPTransport:
        """The transport for an ``smtp://`` or ``smtps://`` URL (see the module docstring);
        ``options`` are constructor keywords and win over the URL (e.g. ``password=``)."""
        check_options(cls.__init__, options, url)
        arguments = url_arguments(url)
        arguments.update(options)
        return cls(**arguments)

    #: e-mails of one batch that one connection carries in a row (``send_bulk``)
    max_bulk = 8  # 1.125 round trips per e-mail without CHUNKING; finer shares of work
    bulk_sequential = True

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Deliver over a pooled connection; recipients the server refused while accepting
        others are in ``Receipt.refused``. An address whose local part is not ASCII goes
        with SMTPUTF8 when the server offers it; otherwise that recipient is refused
        (``553 5.6.7``) and the others get the e-mail."""
        results: list[Outcome] = []
        self._send_each([Envelope(message, message_id)], lambda _, result: results.append(result))
        (result,) = results
        if isinstance(result, Exception):
            raise result
        return result

    def bulk_key(self, message: Message) -> Hashable | None:
        """Any e-mail may follow another on a connection: one key for all."""
        return "smtp" if self.pipelining else None

    def send_each(self, entries: Sequence[BulkEntry], answered: Answered) -> None:
        """The e-mails one after another over one connection, each answered as ``send``
        answers, as soon as its answer is read: before the next e-mail's content leaves
        (without CHUNKING its envelope is already behind this content: ``smtp_pipeline``)."""

        def each(position: int, result: Outcome) -> None:
            if isinstance(result, InvalidMessage):  # unsendable: a permanent answer
                result = PermanentError(str(result))
            answered(position, result)

        self._send_each([Envelope(e.message, e.message_id) for e in entries], each)

    def _send_each(
        self, envelopes: list[Envelope], answered: Callable[[int, Outcome], None]
    ) -> None:
        self._take_slot()
        try:
            self._deliver(envelopes, answered)
        finally:
            self._return_slot()

    def close(self) -> None:
        """QUIT every idle connection, all at once (``quit_all``: a distant server
        answers them in one round trip, not one per connection); connections in use are
        closed when their send ends. The transport stays usable: a later send opens a
        new connection."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        quit_all(idle, self.timeout)

    def share_connections(self, share: ConnectionShare | None) -> None:
        """Let ``share`` say how many of ``max_connections`` this transport may use now
        (several delivery processes lend each other their part: ``triggers.processes``);
        None: all of them."""
        with self._lock:
            self._share = share
            self._slots.notify_all()

    # -- the pool --------------------------------------------------------------------

    def _limit(self) -> int:
        if self._share is None:
            return self.max_connections
        return max(1, min(self.max_connections, self._share.limit()))

    def _take_slot(self) -> None:
        with self._lock:
            # a share may grow from another process: look again now and then
            while self._in_use >= self._limit():
                self._slots.wait(None if self._share is None else 0.05)
            self._in_use += 1
            share = self._share
        if share is not None:
            share.started()

    def _return_slot(self) -> None:
        with self._lock:
            self._in_use -= 1
            self._slots.notify()
            share = self._share
        if share is not None:
            share.ended()

    def _deliver(
        self,
        envelopes: list[Envelope],
        answered: Callable[[int, Outcome], None],
    ) -> None:
        """Each e-mail over one held connection (another one when it is lost), answered
        in turn; the next e-mail's envelope follows each content when the server allows."""
        held: tuple[Connection, bool] | None = None
        result: Outcome | None = None
        try:
            for position, envelope in enumerate(envelopes):
                following = envelopes[position + 1] if position + 1 < len(envelopes) else None
                if not isinstance(result, TransportUnavailable):  # else the rest wait, untried
                    held, result = self._deliver_next(held, envelope, following)
                answered(position, result)
        except BaseException:  # the connection's state is unknown: not reused
            if held is not None and held[0].sock is not None:
                self._discard(held[0])
            raise
        if held is not None:
            self._give_back(held[0])

    def _deliver_next(
        self, held: tuple[Connection, bool] | None, envelope: Envelope, following: Envelope | None
    ) -> tuple[tuple[Connection, bool] | None, Outcome]:
        """One e-mail of a run: the connection held after it (None: none is), the outcome."""
        try:
            if held is None or (held[0].sent_ahead is None and held[0].stale()):
                if held is not None:  # closed by the server since its last answer
                    self._discard(held[0])
                held = self._borrow()
            connection, result = self._deliver_one(*held, envelope, following)
        except (DeliveryError, InvalidMessage) as err:
            return None, err
        return (None if connection is None else (connection, True)), result

    def _deliver_one(
        self, connection: Connection, reused: bool, envelope: Envelope, following: Envelope | None
    ) -> tuple[Connection | None, Outcome]:
        """One e-mail on ``connection``: the connection to go on with (None: discarded)
        and what came of it. A connection found dead before the content left is
        replaced and the e-mail sent again on the new one."""
        while True:
            connection.data_started = False
            try:
                outgoing = self._ready(connection, envelope)
                refused = connection.sendmail(
                    outgoing.sender,
                    list(outgoing.recipients),
                    outgoing.data,
                    envelope.options,
                    following=functools.partial(self._following, connection, following),
                )
            except (InvalidMessage, PermanentError) as err:
                return connection, err  # the e-mail cannot go; the connection is fine
            except BaseException as err:
                if isinstance(err, smtplib.SMTPException) and session_goes_on(connection, err):
                    return connection, self._translate(err, connection.data_started)
                self._discard(connection)
                if reused and dropped_before_data(connection.data_started, err):
                    log.info("%s closed an idle connection (%s); reconnecting", self._where, err)
                    connection, reused = self._open(), False
                    self._count_lent(+1)
                    continue
                if isinstance(err, Exception):
                    return None, self._translate(err, connection.data_started)
                raise
            return connection, envelope.receipt(outgoing, refused)

    def _ready(self, connection: Connection, envelope: Envelope) -> Outgoing:
        connection.ehlo_or_helo_if_needed()
        outgoing = envelope.for_server(connection.has_extn("smtputf8"), self._where)
        check_advertised_size(connection.esmtp_features, len(outgoing.data), self._where)
        return outgoing

    def _following(self, connection: Connection, envelope: Envelope | None) -> Following | None:
        """The next e-mail as its envelope would go on ``connection``; None when it
        cannot go (it fails on its own turn, with its own error)."""
        if envelope is None:
            return None
        try:
            outgoing = self._ready(connection, envelope)
        except (InvalidMessage, PermanentError):
            return None
        return Following(outgoing.sender, outgoing.recipients, outgoing.data, envelope.options)

    def _borrow(self) -> tuple[Connection, bool]:
        """An idle connection (the most recent), else a new one. One the server closed
        while it sat idle is left without sending anything on it: with BDAT the content
        leaves with the envelope, so a drop noticed only after that write could not be
        told from one during the content."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                opened = self._open()
                self._count_lent(+1)
                return opened, False
            if not connection.stale():
                self._count_lent(+1)
                return connection, True
            log.info("%s closed an idle connection; opening another", self._where)
            connection.close()

    def _count_lent(self, change: int) -> None:
        with self._lock:
            self._lent += change

    def _give_back(self, connection: Connection) -> None:
        with self._lock:
            self._lent -= 1
            if connection.generation == self._generation:
                # the connections this process keeps: those held by sends and the idle
                if self._share is None or self._lent + len(self._idle) < self._limit():
                    self._idle.append(connection)
                    return
                # more connections than this process's share now: another process needs
                # them; QUIT in the background (a distant server answers in a round trip)
                threading.Thread(target=quit_connection, args=(connection,), daemon=True).start()
                return
        quit_connection(connection)

    def _discard(self, connection: Connection) -> None:
        self._count_lent(-1)
        if connection.sock is not None:
            quit_connection(connection)
        connection.close()

    # -- opening a connection ----------------------------------------------------------

    def _open(self) -> Connection:
        """A connected, secured and logged-in connection; errors already translated."""
        try:
            connection = self._connect()
        except Exception as err:
            raise self._translate(err, data_started=False) from err
        try:
            self._secure(connection)
            self._login(connection)
        except BaseException as err:
            connection.close()
            if isinstance(err, DeliveryError) or not isinstance(err, Exception):
                raise
            raise self._translate(err, data_started=False) from err
        with self._lock:
            connection.generation = self._generation
        return connection

    def _ehlo_name(self) -> str:
        return self.local_hostname or default_ehlo_name()

    def _connect(self) -> Connection:
        connection: Connection
        if self.implicit_tls:
            connection = TLSConnection(
                self.host,
                self.port,
                local_hostname=self._ehlo_name(),
                timeout=self.timeout,
                context=self._tls.get(),
            )
        else:
            connection = Connection(
                self.host, self.port, local_hostname=self._ehlo_name(), timeout=self.timeout
            )
        connection.pipelining = self.pipelining
        connection.chunking = self.chunking
        return connection

    def _secure(self, connection: Connection) -> None:
        if self.implicit_tls or self.starttls == "never":
            return
        connection.ehlo_or_helo_if_needed()
        if connection.has_extn("starttls"):
            connection.starttls(context=self._tls.get())
        elif self.starttls == "always":
            raise TransportUnavailable(
                f"{self._where} does not offer STARTTLS, and the transport requires it "
                "(starttls=always): no credentials and no message were sent"
            )

    def _login(self, connection: Connection) -> None:
        if self.username is not None:
            connection.login(self.username, self._password or "")

    # -- errors ----------------------------------------------------------------------

    def _translate(self, err: Exception, data_started: bool) -> DeliveryError:
        """The mailspool error for what smtplib, ssl or the socket raised."""
        return translate(err, self._where, self.username, self.timeout, data_started)
