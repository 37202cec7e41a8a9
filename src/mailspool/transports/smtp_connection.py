"""One SMTP connection as the transport's pool keeps it (``smtplib``'s, with the envelope
pipelined or sent with BDAT by ``smtp_pipeline``): whether its content has started to
travel, whether the server closed it while it sat idle; and one e-mail's envelope as it
goes to a server that offers SMTPUTF8 or does not."""

from __future__ import annotations

import contextlib
import functools
import select
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from mailspool.errors import PermanentError
from mailspool.message import Message, ascii_domain, has_utf8_local_part
from mailspool.transports._common import Outgoing, prepare
from mailspool.transports.base import Receipt
from mailspool.transports.smtp_errors import answer_text
from mailspool.transports.smtp_pipeline import PipeliningSMTP

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "Connection",
    "Envelope",
    "TLSConnection",
    "default_ehlo_name",
    "quit_all",
    "quit_connection",
    "smtp_address",
]


class Connection(PipeliningSMTP):
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
            return tls_stale(sock)
        return True


def tls_stale(sock: ssl.SSLSocket) -> bool:
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


class TLSConnection(Connection, smtplib.SMTP_SSL):
    """``Connection`` over implicit TLS (smtps)."""


def quit_connection(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


def quit_all(connections: Sequence[smtplib.SMTP], timeout: float) -> None:
    """QUIT every connection at once from this thread: each QUIT is written first, then
    each answer read, so a distant server answers them all in one round trip; the
    answers are awaited ``timeout`` seconds in all, not each."""
    written = []
    for connection in connections:
        try:
            connection.putcmd("quit")
            written.append(connection)
        except (smtplib.SMTPException, OSError):
            connection.close()
    deadline = time.monotonic() + timeout
    for connection in written:
        with contextlib.suppress(smtplib.SMTPException, OSError, ValueError):
            if connection.sock is not None:
                connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                connection.getreply()
        connection.close()


@functools.cache
def default_ehlo_name() -> str:
    """The name ``smtplib`` greets with when given none (this host's FQDN, else its
    address literal), found once per process: ``smtplib`` looks it up again, a reverse
    DNS lookup that a slow resolver holds for seconds, for every connection it opens."""
    name: str = smtplib.SMTP().local_hostname  # no host: nothing is connected
    return name


class Envelope:
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

    def receipt(self, outgoing: Outgoing, refused: dict[str, tuple[int, bytes]]) -> Receipt:
        """What the server's acceptance says: the recipients refused, by the server (its
        answers) or before it (``unsendable``)."""
        answers = {address: answer_text(code, text) for address, (code, text) in refused.items()}
        return Receipt(outgoing.message_id, refused={**self.unsendable, **answers})

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
        sender = smtp_address(outgoing.sender)
        return replace(
            outgoing, sender=sender, recipients=tuple(map(smtp_address, kept))
        ), unsendable


def smtp_address(address: str) -> str:
    """The address with its domain in IDNA (A-labels), which every server takes."""
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{ascii_domain(domain)}" if at else address
