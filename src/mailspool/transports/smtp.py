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
operation. ``pipelining`` (true) sends MAIL FROM, every RCPT TO and DATA in one
round trip when the server advertises PIPELINING (RFC 2920, ``smtp_pipeline``);
``chunking`` (true) sends the content in that same write as ``BDAT <size> LAST`` when the
server also offers CHUNKING (RFC 3030): one round trip per e-mail, plain or TLS alike.
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

import contextlib
import logging
import select
import smtplib
import ssl
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from mailspool.errors import (
    ConfigurationError,
    ContentUnanswered,
    DeliveryError,
    InvalidMessage,
    PermanentError,
    TransientError,
    TransportUnavailable,
)
from mailspool.message import Message, ascii_domain, has_utf8_local_part
from mailspool.transports._common import (
    Outgoing,
    check_options,
    parse_bool,
    prepare,
    query_parameters,
    redact,
    split_url,
)
from mailspool.transports.base import Receipt, Transport
from mailspool.transports.smtp_pipeline import (
    NoAnswer,
    PipeliningSMTP,
    UnreadableReply,
    dropped_before_data,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["ConnectionShare", "SMTPTransport"]

log = logging.getLogger(__name__)

_URL_PARAMETERS = frozenset(
    {
        "cafile",
        "local_hostname",
        "max_connections",
        "pipelining",
        "chunking",
        "event_loop",
        "starttls",
        "timeout",
        "verify",
    }
)
_STARTTLS_MODES = frozenset({"auto", "always", "never"})


class ConnectionShare(Protocol):
    """How many connections a transport may use now, and when its sends start and end."""

    def limit(self) -> int: ...

    def started(self) -> None: ...

    def ended(self) -> None: ...


class _Connection(PipeliningSMTP):
    """An SMTP connection that knows whether DATA began, and which pool opened it."""

    data_started = False
    generation = 0

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)

    def begin_data(self) -> None:
        self.data_started = True

    def content_discarded(self) -> None:
        self.data_started = False  # the server refused the envelope: the content is dropped

    def stale(self) -> bool:
        """True when the server has spoken or hung up since the last answer (an idle
        connection it closed, often with a 421): a local look, no round trip."""
        sock = self.sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        if isinstance(sock, ssl.SSLSocket):
            return _tls_stale(sock)
        return True


def _tls_stale(sock: ssl.SSLSocket) -> bool:
    """A readable TLS socket may hold only TLS's own records (TLS 1.3 session tickets
    come after the handshake): stale only when the server sent bytes or hung up."""
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0)
        sock.recv(1)  # the server's words (a 421) or b"" (closed): stale either way
    except ssl.SSLWantReadError:
        return False  # nothing but TLS records
    except (OSError, ValueError):
        return True
    finally:
        with contextlib.suppress(OSError, ValueError):
            sock.settimeout(timeout)
    return True


class _TLSConnection(_Connection, smtplib.SMTP_SSL):
    """``_Connection`` over implicit TLS (smtps)."""


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
        _check_settings(host, username, password, implicit_tls, starttls)
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
        self._ssl_context = ssl_context or _ssl_context(verify, cafile)
        scheme = "smtps" if implicit_tls else "smtp"
        user = f"{quote(username, safe='')}@" if username else ""
        self.url = f"{scheme}://{user}{_host_in_url(host)}:{self.port}"
        self._where = f"SMTP server {_host_in_url(host)}:{self.port}"
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
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
        arguments = _url_arguments(url)
        arguments.update(options)
        return cls(**arguments)

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Deliver over a pooled connection; recipients the server refused while accepting
        others are in ``Receipt.refused``. An address whose local part is not ASCII goes
        with SMTPUTF8 when the server offers it; otherwise that recipient is refused
        (``553 5.6.7``) and the others get the e-mail."""
        envelope = _Envelope(message, message_id)
        self._take_slot()
        try:
            outgoing, refused = self._deliver(envelope)
        finally:
            self._return_slot()
        answers = {address: _answer(code, text) for address, (code, text) in refused.items()}
        return Receipt(outgoing.message_id, refused={**envelope.unsendable, **answers})

    def close(self) -> None:
        """QUIT every idle connection, all at once (one thread each: a distant server
        answers them in one round trip, not one per connection); connections in use are
        closed when their send ends. The transport stays usable: a later send opens a
        new connection."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        if len(idle) == 1:
            _quit(idle[0])
            return
        quitting = [
            threading.Thread(target=_quit, args=(c,), name="mailspool-quit", daemon=True)
            for c in idle
        ]
        for thread in quitting:
            thread.start()
        for thread in quitting:
            thread.join()

    def share_connections(self, share: ConnectionShare | None) -> None:
        """Let ``share`` say how many of ``max_connections`` this transport may use now
        (several delivery processes lend each other their part: ``delivery.processes``);
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

    def _deliver(self, envelope: _Envelope) -> tuple[Outgoing, dict[str, tuple[int, bytes]]]:
        connection, reused = self._borrow()
        while True:
            connection.data_started = False
            try:
                connection.ehlo_or_helo_if_needed()
                outgoing = envelope.for_server(connection.has_extn("smtputf8"), self._where)
                self._check_size(connection, len(outgoing.data))
                refused = connection.sendmail(
                    outgoing.sender, list(outgoing.recipients), outgoing.data, envelope.options
                )
            except (InvalidMessage, PermanentError):
                self._give_back(connection)  # the e-mail cannot go; the connection is fine
                raise
            except BaseException as err:
                if isinstance(err, smtplib.SMTPException) and _session_goes_on(connection, err):
                    self._give_back(connection)  # the server refused this one; ready for more
                    raise self._translate(err, connection.data_started) from err
                self._discard(connection)
                if reused and dropped_before_data(connection.data_started, err):
                    log.info("%s closed an idle connection (%s); reconnecting", self._where, err)
                    connection, reused = self._open(), False
                    self._count_lent(+1)
                    continue
                if isinstance(err, Exception):
                    raise self._translate(err, connection.data_started) from err
                raise
            self._give_back(connection)
            return outgoing, refused

    def _check_size(self, connection: _Connection, size: int) -> None:
        connection.ehlo_or_helo_if_needed()
        self._check_advertised_size(connection.esmtp_features, size)

    def _check_advertised_size(self, features: dict[str, str], size: int) -> None:
        """Refuse, before sending anything, a message larger than the SIZE the server
        advertises in its EHLO answer (RFC 1870)."""
        advertised = features.get("size", "").strip()
        if advertised.isdigit() and 0 < int(advertised) < size:
            raise PermanentError(
                f"the message is {size} bytes, more than the SIZE {advertised} that "
                f"{self._where} advertises; not sent"
            )

    def _borrow(self) -> tuple[_Connection, bool]:
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

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            self._lent -= 1
            if connection.generation == self._generation:
                # the connections this process keeps: those held by sends and the idle
                if self._share is None or self._lent + len(self._idle) < self._limit():
                    self._idle.append(connection)
                    return
                # more connections than this process's share now: another process needs
                # them; QUIT in the background (a distant server answers in a round trip)
                threading.Thread(target=_quit, args=(connection,), daemon=True).start()
                return
        _quit(connection)

    def _discard(self, connection: _Connection) -> None:
        self._count_lent(-1)
        if connection.sock is not None:
            _quit(connection)
        connection.close()

    # -- opening a connection ----------------------------------------------------------

    def _open(self) -> _Connection:
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

    def _connect(self) -> _Connection:
        connection: _Connection
        if self.implicit_tls:
            connection = _TLSConnection(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self._ssl_context,
            )
        else:
            connection = _Connection(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        connection.pipelining = self.pipelining
        connection.chunking = self.chunking
        return connection

    def _secure(self, connection: _Connection) -> None:
        if self.implicit_tls or self.starttls == "never":
            return
        connection.ehlo_or_helo_if_needed()
        if connection.has_extn("starttls"):
            connection.starttls(context=self._ssl_context)
        elif self.starttls == "always":
            raise TransportUnavailable(
                f"{self._where} does not offer STARTTLS, and the transport requires it "
                "(starttls=always): no credentials and no message were sent"
            )

    def _login(self, connection: _Connection) -> None:
        if self.username is not None:
            connection.login(self.username, self._password or "")

    # -- errors ----------------------------------------------------------------------

    def _translate(self, err: Exception, data_started: bool) -> DeliveryError:
        """The mailspool error for what smtplib, ssl or the socket raised."""
        if isinstance(err, smtplib.SMTPAuthenticationError):
            answer = _answer(err.smtp_code, err.smtp_error)
            return PermanentError(
                f"authentication failed at {self._where} as {self.username!r}: {answer}",
                response=answer,
            )
        if isinstance(err, smtplib.SMTPRecipientsRefused):
            return _all_refused(self._where, err)
        if isinstance(err, smtplib.SMTPResponseException):
            return _answered(self._where, err)
        if isinstance(err, NoAnswer):
            return _network_error(self._where, TimeoutError(), self.timeout, data_started)
        if isinstance(err, smtplib.SMTPServerDisconnected):
            if data_started:
                return ContentUnanswered(
                    f"connection to {self._where} lost during DATA (the message may have "
                    f"arrived): {err}"
                )
            return TransportUnavailable(f"connection to {self._where} lost: {err}")
        if isinstance(err, smtplib.SMTPException):  # not supported, no common AUTH method
            return PermanentError(f"{self._where} cannot be used as configured: {err}")
        return _network_error(self._where, err, self.timeout, data_started)


def _answer(code: int, text: bytes | str) -> str:
    """``"550 5.1.1 no such user"``: one line, as the server said it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


#: Answers that close or refuse the whole session, whatever the e-mail (RFC 5321 421,
#: RFC 3207 454 "TLS not available due to temporary reason").
_SESSION_CODES = frozenset({421, 454})


def _error_for(code: int, message: str, answer: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentError(message, response=answer)
    if code in _SESSION_CODES:
        return TransportUnavailable(message, response=answer)
    return TransientError(message, response=answer)


def _answered(where: str, err: smtplib.SMTPResponseException) -> DeliveryError:
    answer = _answer(err.smtp_code, err.smtp_error)
    if err.smtp_code == 552 or "5.3.4" in answer:
        what = "refused the message as too large"
    elif isinstance(err, smtplib.SMTPSenderRefused):
        what = f"refused the sender {err.sender!r}"
    elif isinstance(err, smtplib.SMTPDataError):
        what = "refused the message"
    elif isinstance(err, smtplib.SMTPConnectError):
        what = "refused the connection"
    else:
        what = "answered"
    return _error_for(err.smtp_code, f"{where} {what}: {answer}", answer)


def _all_refused(where: str, err: smtplib.SMTPRecipientsRefused) -> DeliveryError:
    answers = {address: _answer(code, text) for address, (code, text) in err.recipients.items()}
    listed = "; ".join(f"{address}: {answer}" for address, answer in answers.items())
    codes = [code for code, _ in err.recipients.values()]
    error: type[DeliveryError] = TransientError
    if any(code in _SESSION_CODES for code in codes):
        error = TransportUnavailable
    elif all(500 <= code < 600 for code in codes):
        error = PermanentError
    return error(f"{where} refused every recipient: {listed}", response=listed)


def _network_error(where: str, err: Exception, timeout: float, data_started: bool) -> DeliveryError:
    """Before the content, a network failure is the server's, not the e-mail's
    (``TransportUnavailable``); once the content has started to travel, the e-mail may
    have arrived, and a retry of it is counted."""
    error: type[TransientError] = ContentUnanswered if data_started else TransportUnavailable
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        reason = getattr(err, "verify_message", None) or getattr(err, "reason", None) or err
        return error(f"TLS with {where} failed: {reason}")
    if isinstance(err, TimeoutError):
        return error(f"{where} did not answer within {timeout:g} s")
    if isinstance(err, ConnectionRefusedError):
        return error(f"{where} refused the connection (nothing listening?)")
    if isinstance(err, OSError):
        return error(f"cannot talk to {where}: {err.strerror or err}")
    return error(f"{where}: {type(err).__name__}: {err}")


def _session_goes_on(connection: smtplib.SMTP, err: smtplib.SMTPException) -> bool:
    """True when the server answered this e-mail (sender, recipients or content refused)
    and the transaction was ended (smtplib and ``smtp_pipeline`` send RSET): the
    connection can carry the next e-mail. A 421 closes the session."""
    if connection.sock is None or isinstance(err, UnreadableReply):
        return False
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return all(code != 421 for code, _ in err.recipients.values())
    return isinstance(err, smtplib.SMTPResponseException) and err.smtp_code != 421


def _quit(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


class _Envelope:
    """One e-mail as it goes to a server that offers SMTPUTF8 or does not; rendered
    once for each answer. Without SMTPUTF8 the recipients whose local part is not ASCII
    are refused (``unsendable``) and the e-mail goes to the others."""

    def __init__(self, message: Message, message_id: str | None) -> None:
        self.message = message
        self.message_id = message_id
        self.needs_utf8 = any(
            has_utf8_local_part(a) for a in (message.envelope_sender, *message.envelope_recipients)
        )
        self.options: list[str] = []
        self.unsendable: dict[str, str] = {}
        self._rendered: dict[bool, tuple[Outgoing, dict[str, str]]] = {}

    def for_server(self, offers_utf8: bool, where: str) -> Outgoing:
        utf8 = self.needs_utf8 and offers_utf8
        self.options = ["SMTPUTF8"] if utf8 else []
        if utf8 not in self._rendered:
            self._rendered[utf8] = self._outgoing(utf8, where)
        outgoing, self.unsendable = self._rendered[utf8]
        return outgoing

    def _outgoing(self, utf8: bool, where: str) -> tuple[Outgoing, dict[str, str]]:
        outgoing = prepare(self.message, self.message_id, utf8=utf8)
        kept, unsendable = outgoing.recipients, {}
        if self.needs_utf8 and not utf8:
            refusal = (
                f"553 5.6.7 {where} does not offer SMTPUTF8, needed for a non-ASCII local part"
            )
            if has_utf8_local_part(outgoing.sender):
                raise PermanentError(f"sender {outgoing.sender!r}: {refusal}", response=refusal)
            kept = tuple(a for a in kept if not has_utf8_local_part(a))
            unsendable = {a: refusal for a in outgoing.recipients if a not in kept}
            if not kept:
                listed = "; ".join(f"{a}: {refusal}" for a in unsendable)
                raise PermanentError(f"{where} can take no recipient: {listed}", response=listed)
        sender = _smtp_address(outgoing.sender)
        return replace(
            outgoing, sender=sender, recipients=tuple(map(_smtp_address, kept))
        ), unsendable


def _smtp_address(address: str) -> str:
    """The address with its domain in IDNA (A-labels), which every server takes."""
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{ascii_domain(domain)}" if at else address


def _ssl_context(verify: bool, cafile: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as err:
        raise ConfigurationError(f"cannot load cafile {cafile!r}: {err}") from err
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _check_settings(
    host: str,
    username: str | None,
    password: str | None,
    implicit_tls: bool,
    starttls: str | None,
) -> None:
    if not host:
        raise ConfigurationError("the SMTP transport needs a host")
    if starttls is not None and starttls not in _STARTTLS_MODES:
        raise ConfigurationError(
            f"starttls must be one of {', '.join(sorted(_STARTTLS_MODES))}, not {starttls!r}"
        )
    if implicit_tls and starttls is not None:
        raise ConfigurationError("starttls does not apply to smtps://, which is TLS from the start")
    if password is not None and not username:
        raise ConfigurationError("an SMTP password was given without a user name")
    if not (username or "").isascii() or not (password or "").isascii():
        raise ConfigurationError("the SMTP user name and password must be ASCII (smtplib's AUTH)")


def _url_arguments(url: str) -> dict[str, Any]:
    """Constructor keywords from an ``smtp://`` or ``smtps://`` URL."""
    parts = split_url(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigurationError(f"not an SMTP URL (smtp:// or smtps://): {redact(url)!r}")
    if not parts.hostname:
        raise ConfigurationError(f"no host in SMTP URL {redact(url)!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigurationError(f"an SMTP URL has no path or fragment: {redact(url)!r}")
    arguments: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "implicit_tls": parts.scheme == "smtps",
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }
    query = query_parameters(url, parts.query, _URL_PARAMETERS)
    arguments.update(_typed_parameters(query))
    return arguments


def _typed_parameters(query: dict[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = dict(query)
    for name, kind in (("timeout", float), ("max_connections", int)):
        if name in query:
            try:
                typed[name] = kind(query[name])
            except ValueError as err:
                raise ConfigurationError(f"{name} must be a number, not {query[name]!r}") from err
    if typed.pop("event_loop", None) is not None:
        log.warning("the SMTP URL option event_loop is no longer used; leave it out")
    for name in ("verify", "pipelining", "chunking"):
        if name in query:
            typed[name] = parse_bool(name, query[name])
    return typed


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
