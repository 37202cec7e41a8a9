"""SMTP PIPELINING (RFC 2920) on top of ``smtplib``'s connection handling.

Without pipelining an e-mail costs four round trips: MAIL FROM, RCPT TO (one per
recipient), DATA, then the content. When the server advertises ``PIPELINING``,
``PipeliningSMTP.sendmail`` writes MAIL FROM, every RCPT TO and DATA in one write and
reads their answers in order: two round trips per e-mail, whatever the number of
recipients. Socket, TLS, EHLO, AUTH and reply parsing stay ``smtplib``'s own.

When the server also offers ``CHUNKING`` (RFC 3030), the content goes in the same write
as the envelope, as ``BDAT <size> LAST`` followed by the message's bytes (no dot
stuffing): MAIL FROM, every RCPT TO, BDAT and the content leave together and their
answers are read in order, one round trip per e-mail. The content has then left before
any answer is known: ``begin_data`` is called before that write, and ``content_discarded``
once an answer proves the server will not deliver it (MAIL FROM refused, every recipient
refused: the server drops the chunk, RFC 3030 section 4.2). So "the content may have
arrived" keeps meaning exactly what it means with DATA.

Without CHUNKING, the next e-mail on the connection (``following``) has RSET, its MAIL
FROM, RCPT TO and DATA written in the same write as this e-mail's content, behind the
end-of-data line (RFC 2920 3.1: the content may open a group, DATA must close it): the
answer to the content and the next envelope's answers come back together, one round trip
per e-mail. The RSET is there because a server need not end the transaction when it
refuses the content: Postfix, refusing it with ``smtpd_end_of_data_restrictions``, answers
the next MAIL FROM "503 nested MAIL command" and takes the RCPT TO and DATA that follow
into the refused transaction. That envelope is then "sent ahead" (``sent_ahead``): the
next ``sendmail`` reads the answers to RSET and to it instead of writing it. Its content
waits for its own 354, so a connection lost before that answer is one on which the next
e-mail's content never left.

Answers are read and judged exactly as ``smtplib.SMTP.sendmail`` judges them, and the same
exceptions come out: a refused sender is ``SMTPSenderRefused``, recipients refused while
others were accepted are returned, all refused is ``SMTPRecipientsRefused``, a refused
DATA or content is ``SMTPDataError``; a 421 closes the connection. RFC 2920 asks the
client to check the answer to DATA even when every recipient was refused: if the server
accepted it anyway (354), an empty message (a lone dot) ends the transaction.

``following`` is given as a function that makes the next e-mail ready (its bytes
rendered). The pipelined DATA path calls it before writing the content, which carries
the next envelope; the other paths (BDAT, a server without PIPELINING) call it once the
content is written, while its answer travels, so that rendering the next e-mail costs
no time on the connection.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "Answers",
    "Following",
    "NoAnswer",
    "PipeliningSMTP",
    "UnreadableReply",
    "chunked_group",
    "content_lines",
    "dropped_before_data",
    "envelope_group",
    "judge_envelope",
]

_OK = frozenset({250, 251})
_CRLF = b"\r\n"

#: Lines one reply may have; EHLO answers run to about twenty.
MAX_REPLY_LINES = 100


class UnreadableReply(smtplib.SMTPResponseException):
    """A reply the client will not read to its end: the connection is left unusable."""


class NoAnswer(smtplib.SMTPServerDisconnected):
    """The server said nothing within the timeout; the connection is closed."""


class _StopReading(Exception):
    """Raised inside ``smtplib``'s reply loop, which turns every ``OSError`` (and so every
    ``SMTPException``) into "connection unexpectedly closed"; ``getreply`` raises
    ``error`` instead."""

    def __init__(self, error: smtplib.SMTPException) -> None:
        super().__init__(str(error))
        self.error = error


class _BoundedReply:
    """A connection's read side that counts the lines of the reply being read."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._lines = 0

    def readline(self, limit: int = -1) -> bytes:
        try:
            line = self._file.readline(limit)
        except TimeoutError as err:
            raise _StopReading(NoAnswer(str(err))) from None
        self._lines = self._lines + 1 if line[3:4] == b"-" else 0
        if self._lines >= MAX_REPLY_LINES:
            what = f"a reply of more than {MAX_REPLY_LINES} lines: too many lines"
            raise _StopReading(UnreadableReply(554, what.encode()))
        return line

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class Answers:
    """The answers to one pipelined group: MAIL FROM, each RCPT TO, then DATA."""

    mail: tuple[int, bytes]
    rcpt: tuple[tuple[int, bytes], ...]
    data: tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class Following:
    """The next e-mail on a connection, whose envelope may follow this one's content."""

    sender: str
    recipients: Sequence[str]
    msg: bytes
    mail_options: Sequence[str] = ()


class PipeliningSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that pipelines the envelope when the server offers it.

    ``pipelining = False`` (per connection) sends as plain ``smtplib`` does. A subclass
    may override ``begin_data`` to learn when the content starts to travel.
    """

    pipelining = True
    #: BDAT (RFC 3030) when the server offers CHUNKING and PIPELINING
    chunking = True
    #: the envelope written behind the last content, its answers not read yet
    sent_ahead: bytes | None = None
    #: makes the next e-mail ready once this content is written (``sendmail``)
    _while_answer_travels: Callable[[], object] | None = None

    def getreply(self) -> tuple[int, bytes]:
        """``smtplib``'s reading of one reply, which takes continuation lines without
        end; a hostile server's reply is refused past ``MAX_REPLY_LINES`` lines."""
        if self.file is None and self.sock is not None:
            self.file = _BoundedReply(self.sock.makefile("rb"))
        try:
            return super().getreply()
        except _StopReading as stop:
            self.close()
            raise stop.error from None

    def sendmail(  # type: ignore[override]
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        msg: bytes,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
        following: Callable[[], Following | None] | None = None,
    ) -> dict[str, tuple[int, bytes]]:
        """``smtplib``'s ``sendmail``, pipelined; ``following``: makes the next e-mail on
        this connection ready, whose envelope goes behind this content (without
        CHUNKING); see the module docstring."""
        self.ehlo_or_helo_if_needed()
        self._while_answer_travels = following
        if not (self.pipelining and self.does_esmtp and self.has_extn("pipelining")):
            return super().sendmail(from_addr, list(to_addrs), msg, mail_options, rcpt_options)
        if self.chunking and self.has_extn("chunking"):
            options = self._mail_options(msg, mail_options)
            return self._send_chunked(from_addr, to_addrs, msg, options, rcpt_options)
        self._while_answer_travels = None  # the next envelope goes with this content
        self._send_envelope(self._envelope(from_addr, to_addrs, msg, mail_options, rcpt_options))
        answers = self._read_answers(len(to_addrs))
        refused = self._judge_envelope(from_addr, to_addrs, answers)
        ahead = self._ahead(following() if following is not None else None)
        self.begin_data()
        self.send(content_lines(msg) + (b"RSET\r\n" + ahead if ahead else b""))
        self.sent_ahead = ahead or None
        code, text = self.getreply()
        if code != 250:
            self._end_transaction(code)
            raise smtplib.SMTPDataError(code, text)
        return refused

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        """``smtplib``'s DATA (without PIPELINING): 354, the content, its answer; the
        next e-mail is made ready while that answer travels."""
        self.putcmd("data")
        code, text = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, text)
        content = msg.encode("ascii") if isinstance(msg, str) else bytes(msg)
        self.begin_data()
        self.send(content_lines(content))
        self._ready_next()
        return self.getreply()

    def _ready_next(self) -> None:
        # the next e-mail's rendering, once per content, while the answer travels
        ready, self._while_answer_travels = self._while_answer_travels, None
        if ready is not None:
            ready()

    def _ahead(self, following: Following | None) -> bytes:
        """The next e-mail's envelope, or nothing when it cannot be written (it then
        fails on its own turn, not this e-mail)."""
        if following is None:
            return b""
        try:
            return self._envelope(
                following.sender, following.recipients, following.msg, following.mail_options
            )
        except ValueError:  # a line break in a command, a non-ASCII address
            return b""

    def _mail_options(self, msg: bytes, mail_options: Sequence[str]) -> list[str]:
        if self.has_extn("size"):
            return [f"size={len(msg)}", *mail_options]
        return [*mail_options]

    def _envelope(
        self,
        sender: str,
        recipients: Sequence[str],
        msg: bytes,
        mail_options: Sequence[str],
        rcpt_options: Sequence[str] = (),
    ) -> bytes:
        options = self._mail_options(msg, mail_options)
        return envelope_group(sender, options, recipients, rcpt_options)

    def close(self) -> None:
        self.sent_ahead = None  # answers that will never come
        super().close()

    def _send_envelope(self, group: bytes) -> None:
        """Write the envelope, unless it went ahead behind the last content (then read
        the answer to the RSET before it)."""
        ahead, self.sent_ahead = self.sent_ahead, None
        if ahead is None:
            self.send(group)
            return
        if ahead != group:  # the pool gives a connection back only to the next e-mail
            self.close()
            raise smtplib.SMTPServerDisconnected("an envelope sent ahead for another e-mail")
        code, text = self.getreply()
        if code != 250:  # what the server makes of the envelope is unknown: not sent
            self.close()
            reply = text.decode("utf-8", "replace")
            raise smtplib.SMTPServerDisconnected(f"RSET answered {code} {reply}")

    def begin_data(self) -> None:
        """Called when the content is about to be sent: after 354, or before the write
        that carries BDAT and the content with the envelope."""

    def content_discarded(self) -> None:
        """Called when an answer proves the content sent with BDAT will not be delivered
        (the sender or every recipient refused)."""

    def _send_chunked(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        msg: bytes,
        options: Sequence[str],
        rcpt_options: Sequence[str],
    ) -> dict[str, tuple[int, bytes]]:
        """MAIL FROM, RCPT TO..., ``BDAT <size> LAST`` and the content in one write; the
        answers read in order. Raises as the DATA path does."""
        group = chunked_group(from_addr, options, to_addrs, rcpt_options, msg)
        self.begin_data()
        self.send(group)
        self._ready_next()
        mail = self.getreply()
        rcpt: list[tuple[int, bytes]] = []
        closing = mail[0] == 421
        for _ in to_addrs:
            if closing:
                rcpt.append(mail)  # the server closed the session: no more answers
                continue
            rcpt.append(self.getreply())
            closing = rcpt[-1][0] == 421
        bdat = mail if closing else self.getreply()
        accepted = mail[0] == 250 and any(code in _OK for code, _ in rcpt)
        if not accepted or closing:
            self.content_discarded()  # refused, or a session closed (421) before its end
            if closing or bdat[0] == 421:
                self.close()
            else:
                self._rset()  # type: ignore[attr-defined]
            judge_envelope(from_addr, to_addrs, Answers(mail, tuple(rcpt), (354, b"")))
            raise smtplib.SMTPServerDisconnected("the server closed the session (421)")
        refused = {
            a: answer for a, answer in zip(to_addrs, rcpt, strict=True) if answer[0] not in _OK
        }
        if bdat[0] != 250:
            self._end_transaction(bdat[0])
            raise smtplib.SMTPDataError(*bdat)
        return refused

    def _read_answers(self, recipients: int) -> Answers:
        mail = self.getreply()
        rcpt = tuple(self.getreply() for _ in range(recipients))
        return Answers(mail, rcpt, self.getreply())

    def _judge_envelope(
        self, from_addr: str, to_addrs: Sequence[str], answers: Answers
    ) -> dict[str, tuple[int, bytes]]:
        """The recipients refused; leaves the transaction as RFC 2920 asks and raises as
        ``smtplib.sendmail`` would for the rest."""
        try:
            return judge_envelope(from_addr, to_addrs, answers)
        except smtplib.SMTPSenderRefused as err:
            self._abandon(answers.data[0], err.smtp_code)
            raise
        except smtplib.SMTPRecipientsRefused as err:
            if any(code == 421 for code, _ in err.recipients.values()):
                self.close()
            else:
                self._abandon(answers.data[0], 250)
            raise
        except smtplib.SMTPDataError as err:
            self._end_transaction(err.smtp_code)
            raise

    def _abandon(self, data_code: int, code: int) -> None:
        """Leave a transaction that must not carry the message (RFC 2920, 3.1)."""
        if (
            code != 421 and data_code == 354
        ):  # the server took DATA anyway: end it with an empty message
            self.send(b"." + _CRLF)
            self.getreply()
        self._end_transaction(code)

    def _end_transaction(self, code: int) -> None:
        if code == 421:
            self.close()
        elif self.sent_ahead is None:  # else the RSET is already behind the content
            self._rset()  # type: ignore[attr-defined]


def judge_envelope(
    from_addr: str, to_addrs: Sequence[str], answers: Answers
) -> dict[str, tuple[int, bytes]]:
    """The recipients refused while others were accepted; raises what ``smtplib.sendmail``
    raises: ``SMTPSenderRefused``, ``SMTPRecipientsRefused`` (every recipient refused,
    or a 421 that closes the session), ``SMTPDataError`` (DATA not answered 354)."""
    code, text = answers.mail
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, text, from_addr)
    refused: dict[str, tuple[int, bytes]] = {}
    for address, (code, text) in zip(to_addrs, answers.rcpt, strict=True):
        if code not in _OK:
            refused[address] = (code, text)
        if code == 421:
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(to_addrs):
        raise smtplib.SMTPRecipientsRefused(refused)
    code, text = answers.data
    if code != 354:
        raise smtplib.SMTPDataError(code, text)
    return refused


def envelope_group(
    sender: str, options: Sequence[str], recipients: Sequence[str], rcpt_options: Sequence[str]
) -> bytes:
    """MAIL FROM, each RCPT TO and DATA as one write."""
    mail_tail = "".join(f" {option}" for option in options)
    rcpt_tail = "".join(f" {option}" for option in rcpt_options)
    lines = [f"mail FROM:{quote_address(sender)}{mail_tail}"]
    lines.extend(f"rcpt TO:{quote_address(address)}{rcpt_tail}" for address in recipients)
    lines.append("data")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError(f"a line break in an SMTP command: {line!r}")
    utf8 = any(option.lower() == "smtputf8" for option in options)  # RFC 6531: UTF-8 commands
    return ("\r\n".join(lines) + "\r\n").encode("utf-8" if utf8 else "ascii")


def chunked_group(
    sender: str,
    options: Sequence[str],
    recipients: Sequence[str],
    rcpt_options: Sequence[str],
    msg: bytes,
) -> bytes:
    """MAIL FROM, each RCPT TO, then ``BDAT <size> LAST`` and the message (ending in
    CRLF, sent as it is: BDAT has no dot stuffing), as one write."""
    envelope = envelope_group(sender, options, recipients, rcpt_options)
    envelope = envelope[: -len(b"data\r\n")]
    body = msg if msg.endswith(_CRLF) else msg + _CRLF
    return envelope + b"BDAT %d LAST\r\n" % len(body) + body


#: An address that is a dot-atom at a domain: its own addr-spec, nothing to parse.
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def quote_address(address: str) -> str:
    """``smtplib.quoteaddr(address)``, which parses the address with ``email.utils``
    (a fifth of a pipelined send's time); a plain address is its own answer."""
    if PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def content_lines(msg: bytes) -> bytes:
    """The message with leading dots doubled and the end-of-data line, as smtplib sends it
    (its ``_quote_periods``, ``re.sub(rb'(?m)^\\.', b'..', msg)``: a line starts at the
    beginning and after each LF), with ``bytes.replace``: several times faster."""
    quoted = msg.replace(b"\n.", b"\n..")
    if quoted.startswith(b"."):
        quoted = b"." + quoted
    if not quoted.endswith(_CRLF):
        quoted += _CRLF
    return quoted + b"." + _CRLF


def dropped_before_data(data_started: bool, err: BaseException) -> bool:
    """True when an idle connection turned out dead before DATA: safe to resend."""
    if data_started:
        return False
    if isinstance(err, smtplib.SMTPResponseException):
        return err.smtp_code == 421  # "closing the connection", e.g. after an idle timeout
    return isinstance(err, smtplib.SMTPServerDisconnected | ConnectionError)
