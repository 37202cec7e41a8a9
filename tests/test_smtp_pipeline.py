"""SMTP PIPELINING (RFC 2920): the same outcomes as without it, in two round trips.

(The transport contract runs against both kinds of server in test_transport_smtp.py.)

Every test here runs against real aiosmtpd servers on 127.0.0.1: one that advertises
PIPELINING and one that does not. One test uses a scripted socket server, for a fault
aiosmtpd cannot produce (see its docstring).
"""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.errors import DeliveryError, PermanentError, TransientError
from mailspool.transports.smtp_pipeline import PLAIN_ADDRESS, content_lines, quote_address
from tests.fixtures.smtp_senders import sending
from tests.fixtures.smtp_server import SMTPSink, running_smtp_server
from tests.strategies import addresses
from tests.transport_contract import simple_message

RECIPIENTS = ["a@example.com", "b@example.com", "c@example.com"]


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def server(request: pytest.FixtureRequest) -> Iterator[SMTPSink]:
    with running_smtp_server(pipelining=request.param) as sink:
        yield sink


def reads_for_one_send(url: str, server: SMTPSink) -> int:
    """Round trips of one 3-recipient send on an open connection (EHLO excluded)."""
    with sending(url) as send:
        send(simple_message("warm-up"))
        before = server.reads
        send(simple_message("measured", to=RECIPIENTS))
        return server.reads - before


def test_pipelining_sends_the_envelope_in_one_round_trip(smtp_pipelining_server: SMTPSink) -> None:
    assert reads_for_one_send(smtp_pipelining_server.url, smtp_pipelining_server) == 2
    assert smtp_pipelining_server.envelopes[-1].rcpt_tos == tuple(RECIPIENTS)


def test_without_pipelining_each_command_is_a_round_trip(smtp_server: SMTPSink) -> None:
    assert reads_for_one_send(smtp_server.url, smtp_server) == 3 + len(RECIPIENTS)


def test_pipelining_can_be_turned_off(smtp_pipelining_server: SMTPSink) -> None:
    url = smtp_pipelining_server.url_with(pipelining="false")
    assert reads_for_one_send(url, smtp_pipelining_server) == 3 + len(RECIPIENTS)


def outcome(server: SMTPSink) -> tuple[str, str]:
    """What the transport made of one 3-recipient send: the refused map, or the error."""
    with sending(server.url) as send:
        try:
            receipt = send(simple_message("x", to=RECIPIENTS), message_id="<m@test>")
        except DeliveryError as err:
            return type(err).__name__, str(err).replace(f":{server.port} ", ":PORT ")
        return "sent", repr(sorted(receipt.refused.items()))


def test_refused_recipients_are_reported_as_without_pipelining(server: SMTPSink) -> None:
    server.refuse_recipient("b@example.com")
    server.refuse_recipient("c@example.com", "450 4.2.1 mailbox busy")
    assert outcome(server) == (
        "sent",
        repr(
            [
                (
                    "b@example.com",
                    "550 5.1.1 <b@example.com>: Recipient address rejected: User unknown",
                ),
                ("c@example.com", "450 4.2.1 mailbox busy"),
            ]
        ),
    )
    assert server.envelopes[0].rcpt_tos == ("a@example.com",)


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        (["550 5.1.1 gone"] * 3, PermanentError),
        (["550 5.1.1 gone", "451 4.3.0 later", "550 5.1.1 gone"], TransientError),
    ],
    ids=["all-5xx", "some-4xx"],
)
def test_every_recipient_refused_is_one_error(
    server: SMTPSink, answers: list[str], error: type[DeliveryError]
) -> None:
    for address, answer in zip(RECIPIENTS, answers, strict=True):
        server.refuse_recipient(address, answer)
    kind, text = outcome(server)
    assert kind == error.__name__
    assert "refused every recipient: a@example.com: " + answers[0] in text
    assert server.attempts == []  # no content was sent


def test_a_4xx_after_pipelined_recipients_is_transient(server: SMTPSink) -> None:
    server.defer_first_attempt()
    kind, text = outcome(server)
    assert (kind, text.rpartition(": ")[2]) == (
        "TransientError",
        "451 4.3.0 Temporary failure, please try again later",
    )
    assert server.deferred == ["<m@test>"]


def test_outcomes_match_with_and_without_pipelining() -> None:
    results = []
    for pipelining in (False, True):
        with running_smtp_server(pipelining=pipelining) as sink:
            sink.refuse_recipient("a@example.com", "452 4.5.3 too many recipients")
            sink.defer_first_attempt()
            results.append([outcome(sink), outcome(sink)])
    assert all(result == results[0] for result in results)
    assert results[0][0][0] == "TransientError"
    assert results[0][1][0] == "sent"


class _AcceptsDataAnyway(threading.Thread):
    """A scripted server that answers DATA with 354 although it refused every recipient.

    RFC 2920 says a client must still end such a transaction with a lone dot; aiosmtpd
    (correctly) answers 503 there, so this fault needs a scripted server.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []

    def run(self) -> None:
        connection, _ = self.listener.accept()
        # A client that gives up on a hostile answer may close with unread data: a reset,
        # or a broken pipe for the server's next write.
        with (
            suppress(ConnectionResetError, BrokenPipeError),  # outermost: the flush at close too
            connection,
            connection.makefile("rwb") as stream,
        ):
            stream.write(b"220 scripted\r\n")
            stream.flush()
            for line in iter(stream.readline, b""):
                self.received.append(line)
                reply = self._reply(line)
                if reply:
                    stream.write(reply)
                    stream.flush()

    def _reply(self, line: bytes) -> bytes:
        command = line[:4].upper()
        replies = {
            b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n",
            b"MAIL": b"250 OK\r\n",
            b"RCPT": b"550 5.1.1 no such user\r\n",
            b"DATA": b"354 go ahead\r\n",
            b".\r\n": b"250 empty message accepted\r\n",
            b"RSET": b"250 OK\r\n",
            b"QUIT": b"221 bye\r\n",
        }
        return replies.get(command, b"")


def test_data_accepted_after_every_recipient_refused_ends_with_a_lone_dot() -> None:
    server = _AcceptsDataAnyway()
    server.start()
    with (
        sending(f"smtp://127.0.0.1:{server.port}") as send,
        pytest.raises(PermanentError, match="refused every recipient"),
    ):
        send(simple_message("never sent"))
    server.join(timeout=10)
    commands = [line.split(b" ")[0].strip().upper() for line in server.received]
    assert commands == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b".", b"RSET", b"QUIT"]


@given(st.from_regex(PLAIN_ADDRESS, fullmatch=True) | addresses())
def test_an_address_is_quoted_as_smtplib_quotes_it(address: str) -> None:
    assert quote_address(address) == smtplib.quoteaddr(address)


@given(
    st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"\r", b"a", b"..", b"From "])).map(b"".join)
)
def test_the_content_is_dot_quoted_as_smtplib_quotes_it(message: bytes) -> None:
    quoted = smtplib._quote_periods(message)  # type: ignore[attr-defined]
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    assert content_lines(message) == quoted + b".\r\n"


class _AnswersBadly(_AcceptsDataAnyway):
    """A scripted server whose answer to MAIL FROM is ``mail_reply``: a line longer than
    smtplib accepts, or one without a reply code. No real server answers so; a hostile
    or broken one may."""

    def __init__(self, mail_reply: bytes) -> None:
        super().__init__()
        self.mail_reply = mail_reply

    def _reply(self, line: bytes) -> bytes:
        if line[:4].upper() == b"MAIL":
            return self.mail_reply
        return super()._reply(line)


@pytest.mark.parametrize(
    ("mail_reply", "error", "says"),
    [
        (b"250 " + b"x" * 10_000 + b"\r\n", PermanentError, "Line too long"),
        (b"what? no code here\r\n", TransientError, "refused the sender"),
    ],
    ids=["too-long", "no-code"],
)
def test_a_hostile_answer_is_one_clear_error_and_nothing_is_sent(
    mail_reply: bytes, error: type[DeliveryError], says: str
) -> None:
    server = _AnswersBadly(mail_reply)
    server.start()
    with (
        sending(f"smtp://127.0.0.1:{server.port}") as send,
        pytest.raises(error, match=says),
    ):
        send(simple_message("never sent"))
    server.join(timeout=10)
    assert not any(b"never sent" in line for line in server.received)  # no content left


def test_an_endless_reply_is_refused() -> None:
    """smtplib reads continuation lines without end; the transport stops at 100."""
    server = _AnswersBadly(b"250-more\r\n" * 200 + b"250 ok\r\n")
    server.start()
    with (
        sending(f"smtp://127.0.0.1:{server.port}") as send,
        pytest.raises(PermanentError, match="too many lines"),
    ):
        send(simple_message("never sent"))
    server.join(timeout=10)
    assert not any(b"never sent" in line for line in server.received)
