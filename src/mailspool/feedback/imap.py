"""Read returned mail from an IMAP mailbox: ``mailspool bounces imap URL``.

``imaps://user:password@host:993/INBOX`` (TLS from the start) or ``imap://...:143/INBOX``
(plain, or upgraded with STARTTLS when ``starttls`` is set: ``?starttls=true``). Each
pass selects the mailbox, takes every message not yet ``\\Seen`` (read with
``BODY.PEEK[]``, so a pass that stops part-way leaves it unseen), hands its bytes to
``handle``, then marks it ``\\Seen`` or moves it to another folder (``move_to``; with
the ``MOVE`` extension, else copy, ``\\Deleted`` and expunge). A message whose handling
raised ``StoreError`` stays unseen, for the next pass.

``run`` polls every ``interval`` seconds and survives the server going away: an
error of the connection closes it and the next pass reconnects, after a delay that
doubles from 1 s up to 5 minutes while the server stays away. Handling is idempotent
(``feedback.returned``), so a message handled twice (a crash between handling and
marking it) changes nothing the second time.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from mailspool.errors import ConfigurationError, StoreError
from mailspool.transports._common import parse_bool, query_parameters, redact, split_url

__all__ = ["Mailbox", "MailboxError"]

log = logging.getLogger("mailspool.feedback")

_MAX_BACKOFF = 300.0
_PORTS = {"imap": 143, "imaps": 993}


class MailboxError(Exception):
    """The IMAP server could not be reached or refused a command (retry later)."""


#: The errors of a connection that a reconnect may cure.
_CONNECTION_ERRORS = (OSError, ssl.SSLError, imaplib.IMAP4.error, socket.timeout)


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An IMAP mailbox named by a URL, read one pass at a time."""

    url: str
    move_to: str | None = None
    timeout: float = 30.0
    verify: bool = True
    cafile: str | None = None

    def __post_init__(self) -> None:
        self._server()  # a bad URL fails now, naming it

    def poll_once(self, handle: Callable[[bytes], None]) -> int:
        """One pass over the unseen messages; the number handled. ``MailboxError`` when
        the server cannot be reached or fails; ``StoreError`` from ``handle`` propagates
        after the messages handled before it were marked."""
        connection = self._connect()
        try:
            return self._pass(connection, handle)
        except _CONNECTION_ERRORS as err:
            raise MailboxError(f"{redact(self.url)}: {err}") from err
        finally:
            _logout(connection)

    def run(
        self,
        handle: Callable[[bytes], None],
        *,
        interval: float,
        stopping: threading.Event,
        on_error: Callable[[Exception, float], None] | None = None,
    ) -> None:
        """Poll until ``stopping`` is set; see the module docstring."""
        backoff = 1.0
        while not stopping.is_set():
            try:
                self.poll_once(handle)
            except (MailboxError, StoreError) as err:
                if on_error is not None:
                    on_error(err, backoff)
                log.warning("%s; next try in %g s", err, backoff)
                stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 1.0
            stopping.wait(interval)

    def _pass(self, connection: imaplib.IMAP4, handle: Callable[[bytes], None]) -> int:
        _ok(connection.select(_quoted(self._server().mailbox)), "SELECT")
        found = _ok(connection.uid("SEARCH", "UNSEEN"), "SEARCH")
        uids = (
            [u.decode() for u in found[0].split()] if found and isinstance(found[0], bytes) else []
        )
        handled = 0
        for uid in uids:
            raw = _body(_ok(connection.uid("FETCH", uid, "(BODY.PEEK[])"), "FETCH"))
            if raw is None:
                continue
            handle(raw)
            self._done(connection, uid)
            handled += 1
        return handled

    def _done(self, connection: imaplib.IMAP4, uid: str) -> None:
        if self.move_to is None:
            _ok(connection.uid("STORE", uid, "+FLAGS", "(\\Seen)"), "STORE")
            return
        target = _quoted(self.move_to)
        if "MOVE" in connection.capabilities:
            _ok(connection.uid("MOVE", uid, target), "MOVE")
            return
        _ok(connection.uid("COPY", uid, target), "COPY")
        _ok(connection.uid("STORE", uid, "+FLAGS", "(\\Seen \\Deleted)"), "STORE")
        _ok(connection.expunge(), "EXPUNGE")

    def _connect(self) -> imaplib.IMAP4:
        server = self._server()
        try:
            if server.tls:
                connection: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    server.host, server.port, ssl_context=self._context(), timeout=self.timeout
                )
            else:
                connection = imaplib.IMAP4(server.host, server.port, timeout=self.timeout)
                if server.starttls:
                    connection.starttls(ssl_context=self._context())
        except _CONNECTION_ERRORS as err:
            raise MailboxError(f"cannot reach {redact(self.url)}: {err}") from err
        try:
            connection.login(server.user, server.password)
            if self.move_to is not None:
                connection.create(_quoted(self.move_to))  # "already exists" is fine
        except _CONNECTION_ERRORS as err:
            _logout(connection)
            raise MailboxError(f"{redact(self.url)} refused the login: {err}") from err
        return connection

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _server(self) -> _Server:
        parts = split_url(self.url)
        scheme = parts.scheme.lower()
        if scheme not in _PORTS or not parts.hostname:
            raise ConfigurationError(
                f"an IMAP mailbox is imaps://user:pass@host[:port]/MAILBOX or imap://..., "
                f"not {redact(self.url)!r}"
            )
        options = query_parameters(self.url, parts.query, ("starttls",))
        starttls = parse_bool("starttls", options.get("starttls", "false"))
        if scheme == "imaps" and starttls:
            raise ConfigurationError("starttls is for imap:// (imaps:// is TLS from the start)")
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        if not user:
            raise ConfigurationError(f"no user in IMAP URL {redact(self.url)!r}")
        mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
        port = parts.port or _PORTS[scheme]
        return _Server(scheme == "imaps", starttls, parts.hostname, port, user, password, mailbox)


@dataclass(frozen=True, slots=True)
class _Server:
    tls: bool
    starttls: bool
    host: str
    port: int
    user: str
    password: str
    mailbox: str


def _ok(answer: tuple[str, Sequence[object]], command: str) -> Sequence[object]:
    status, data = answer
    if status != "OK":
        raise MailboxError(f"the server answered {command} with {status}: {data!r}")
    return data


def _body(data: Sequence[object]) -> bytes | None:
    """The message bytes of a ``UID FETCH (BODY.PEEK[])`` answer."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _quoted(name: str) -> str:
    """A mailbox name as an IMAP quoted string (imaplib sends arguments as given)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _logout(connection: imaplib.IMAP4) -> None:
    try:
        connection.logout()
    except (*_CONNECTION_ERRORS, imaplib.IMAP4.abort):
        pass
