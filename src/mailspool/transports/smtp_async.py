"""Many SMTP connections in one thread: the worker's sender on an event loop.

With one thread per connection, a process spends more on handing the interpreter lock
between its sender threads than on SMTP itself (a loopback drain: about 80 ``futex``
calls per e-mail). ``AsyncSMTPSender`` keeps the same pool of connections on one
``asyncio`` loop instead: each e-mail is a coroutine, and a connection's I/O costs no
thread switch.

Connections are opened by ``SMTPTransport`` as before, with ``smtplib``: greeting, EHLO,
STARTTLS, AUTH. The connected socket is then handed to ``asyncio`` for the transactions,
which follow ``smtp_pipeline``: MAIL FROM, every RCPT TO and DATA in one write when the
server offers PIPELINING (one command at a time when it does not), the answers judged by
the same ``judge_envelope``, the content dot-quoted by the same ``content_lines``, and
errors translated by the transport as for its threads. A socket that ``smtplib`` has
wrapped in TLS cannot be handed over (``asyncio`` runs its own TLS), so
``SMTPTransport.async_sender`` offers this sender only for plain connections; TLS
connections stay with the sender threads.

A connection that raised anything is closed, never reused; one that a server closed
while it sat idle is replaced once and the e-mail resent, but only when the failure came
before DATA, so a message is never sent twice by a retry.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailspool.errors import DeliveryError, InvalidMessage, PermanentError
from mailspool.message import Message
from mailspool.transports.base import Receipt
from mailspool.transports.smtp_pipeline import (
    Answers,
    content_lines,
    dropped_before_data,
    envelope_group,
    judge_envelope,
)

if TYPE_CHECKING:
    from mailspool.transports.smtp import _Envelope

__all__ = ["AsyncSMTPSender", "Session"]

_MAXLINE = 8192  # smtplib's bound on a reply line
_MAX_REPLY_LINES = 100  # a reply is a few lines; a server sending more is refused


@dataclass(slots=True)
class Session:
    """One connection handed over to the event loop."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    features: dict[str, str]
    pipelining: bool
    reused: bool = False
    data_started: bool = False
    reusable: bool = False  # after an error: the transaction was left cleanly

    def has_extn(self, name: str) -> bool:
        return name.lower() in self.features

    def close(self) -> None:
        self.writer.close()


#: Opens a connection with smtplib (in a thread), or takes an idle one: its socket, EHLO
#: features, whether it may pipeline and whether it was idle; raises ``DeliveryError``.
Opener = Callable[[], tuple[socket.socket, dict[str, str], bool, bool]]


@dataclass
class _Pool:
    idle: list[Session] = field(default_factory=list)
    slots: asyncio.Semaphore | None = None


class AsyncSMTPSender:
    """Sends through one SMTP server from one event loop, over at most
    ``max_connections`` connections. Every method runs on that loop."""

    def __init__(
        self,
        *,
        open_socket: Opener,
        envelope: Callable[[Message, str | None], _Envelope],
        where: str,
        check_size: Callable[[dict[str, str], int], None],
        translate: Callable[[Exception, bool], DeliveryError],
        answer: Callable[[int, bytes], str],
        max_connections: int,
        timeout: float,
    ) -> None:
        self._open_socket = open_socket
        self._envelope = envelope
        self._where = where
        self._check_size = check_size
        self._translate = translate
        self._answer = answer
        self._max_connections = max_connections
        self._timeout = timeout
        self._pool = _Pool()

    async def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """As ``SMTPTransport.send``: the recipients refused while others got the e-mail
        are in ``Receipt.refused``; raises ``TransientError`` or ``PermanentError``."""
        envelope = self._envelope(message, message_id)
        if self._pool.slots is None:
            self._pool.slots = asyncio.Semaphore(self._max_connections)
        async with self._pool.slots:
            outgoing_id, refused = await self._deliver(envelope)
        answers = {address: self._answer(code, text) for address, (code, text) in refused.items()}
        return Receipt(outgoing_id, refused={**envelope.unsendable, **answers})

    async def aclose(self) -> None:
        """QUIT every idle connection."""
        idle, self._pool.idle = self._pool.idle, []
        for session in idle:
            try:
                session.writer.write(b"QUIT\r\n")
                async with asyncio.timeout(self._timeout):
                    await _reply(session.reader)
            except (OSError, TimeoutError, smtplib.SMTPException):
                pass
            session.close()

    # -- one e-mail -------------------------------------------------------------------

    async def _deliver(self, envelope: _Envelope) -> tuple[str, dict[str, tuple[int, bytes]]]:
        session = await self._borrow()
        while True:
            session.data_started = session.reusable = False
            try:
                outgoing = envelope.for_server(session.has_extn("smtputf8"), self._where)
                self._check_size(session.features, len(outgoing.data))
                refused = await self._transact(
                    session, outgoing.sender, outgoing.recipients, outgoing.data, envelope.options
                )
            except (InvalidMessage, PermanentError):
                self._pool.idle.append(session)  # not sent, and nothing was written
                raise
            except Exception as err:
                if session.reusable:
                    self._pool.idle.append(session)
                    raise self._translate(err, False) from err
                session.close()
                if session.reused and dropped_before_data(session.data_started, err):
                    session = await self._open()
                    continue
                raise self._translate(err, session.data_started) from err
            except BaseException:  # cancelled: the connection is in an unknown state
                session.close()
                raise
            self._pool.idle.append(session)
            return outgoing.message_id, refused

    async def _transact(
        self,
        session: Session,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        options: Sequence[str],
    ) -> dict[str, tuple[int, bytes]]:
        mail_options = [*options]
        if session.has_extn("size"):
            mail_options.insert(0, f"size={len(data)}")
        group = envelope_group(sender, mail_options, recipients, ())
        async with asyncio.timeout(self._timeout):
            if session.pipelining:
                session.writer.write(group)
                answers = await _answers(session.reader, len(recipients))
            else:
                answers = await _one_at_a_time(session, group.split(b"\r\n")[:-1])
        try:
            refused = judge_envelope(sender, recipients, answers)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            try:
                await self._leave(session, answers)
            except Exception:
                session.reusable = False
            raise
        session.data_started = True
        session.writer.write(content_lines(data))
        async with asyncio.timeout(self._timeout):
            code, text = await _reply(session.reader)
        if code != 250:
            raise smtplib.SMTPDataError(code, text)
        return refused

    async def _leave(self, session: Session, answers: Answers) -> None:
        """Leave a refused transaction as ``PipeliningSMTP`` does (RFC 2920, 3.1): a
        DATA the server took anyway gets an empty message, then RSET; after that the
        connection is reusable. A 421 (closing) leaves it to be closed."""
        codes = [answers.mail[0], *(code for code, _ in answers.rcpt), answers.data[0]]
        if 421 in codes:
            return
        async with asyncio.timeout(self._timeout):
            if answers.data[0] == 354:
                session.writer.write(b".\r\n")
                await _reply(session.reader)
            session.writer.write(b"RSET\r\n")
            session.reusable = (await _reply(session.reader))[0] == 250

    # -- the pool ---------------------------------------------------------------------

    async def _borrow(self) -> Session:
        if self._pool.idle:
            session = self._pool.idle.pop()
            session.reused = True
            return session
        return await self._open()

    async def _open(self) -> Session:
        sock, features, pipelining, reused = await asyncio.to_thread(self._open_socket)
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=_MAXLINE)
        except BaseException:
            sock.close()
            raise
        return Session(reader, writer, features, pipelining, reused)


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One reply, possibly of several lines, read as ``smtplib.SMTP.getreply`` reads it."""
    lines: list[bytes] = []
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # longer than the stream's limit
            raise smtplib.SMTPResponseException(500, b"Line too long.") from None
        if not line:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            break
        if len(lines) >= _MAX_REPLY_LINES:
            raise smtplib.SMTPResponseException(500, b"Reply of too many lines.")
    try:
        code = int(line[:3])
    except ValueError:
        code = -1
    return code, b"\n".join(lines)


async def _answers(reader: asyncio.StreamReader, recipients: int) -> Answers:
    mail = await _reply(reader)
    rcpt = tuple([await _reply(reader) for _ in range(recipients)])
    return Answers(mail, rcpt, await _reply(reader))


async def _one_at_a_time(session: Session, commands: list[bytes]) -> Answers:
    """The envelope without PIPELINING: each command waits for its answer. After a
    refused sender, or with every recipient refused, the rest is not sent: their answers
    are recorded as the server's ``503`` would be, and the transaction is left with RSET."""
    replies: list[tuple[int, bytes]] = []
    skipped = (503, b"not sent: an earlier command was refused")
    for command in commands:
        is_data = command == b"data"
        if replies and (
            replies[0][0] != 250 or (is_data and all(c not in (250, 251) for c, _ in replies[1:]))
        ):
            replies.append(skipped)
            continue
        session.writer.write(command + b"\r\n")
        replies.append(await _reply(session.reader))
    return Answers(replies[0], tuple(replies[1:-1]), replies[-1])
