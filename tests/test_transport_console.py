"""The console transport: each message printed whole, with its envelope."""

from __future__ import annotations

import io
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser

import pytest

from mailspool.errors import ConfigurationError
from mailspool.transports import Transport, open_transport
from mailspool.transports.console import SEPARATOR, ConsoleTransport
from tests.transport_contract import Arrived, Delivered, TransportContract, simple_message


def parse_output(text: str) -> list[Arrived]:
    """The messages in console output: split on the separator, read the envelope lines."""
    arrived = []
    for chunk in text.split(SEPARATOR + "\n")[1:]:
        sender_line, recipients_line, message = chunk.split("\n", 2)
        sender = sender_line.removeprefix("Envelope-From: ")
        listed = recipients_line.removeprefix("Envelope-To: ")
        recipients = tuple(listed.split(", ")) if listed else ()
        parsed = BytesParser(policy=policy.default).parsebytes(message.encode("ascii"))
        arrived.append((sender, recipients, parsed))
    return arrived


class TestConsoleTransport(TransportContract):
    @pytest.fixture
    def output(self) -> io.StringIO:
        return io.StringIO()

    @pytest.fixture
    def transport(self, output: io.StringIO) -> Iterator[Transport]:
        with ConsoleTransport(stream=output) as transport:
            yield transport

    @pytest.fixture
    def delivered(self, output: io.StringIO) -> Delivered:
        return lambda: parse_output(output.getvalue())


def test_console_url_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    transport = open_transport("console:")
    receipt = transport.send(simple_message("to stdout", bcc="hidden@example.com"))
    out, err = capsys.readouterr()
    assert err == ""
    [(sender, recipients, message)] = parse_output(out)
    assert sender == "sender@example.com"
    assert recipients == ("rcpt@example.com", "hidden@example.com")
    assert message["Subject"] == "to stdout"
    assert message["Message-ID"] == receipt.message_id
    assert "\r" not in out


def test_stream_parameter_selects_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    transport = open_transport("console:?stream=stderr")
    assert transport.url == "console:?stream=stderr"
    transport.send(simple_message("to stderr"))
    out, err = capsys.readouterr()
    assert out == ""
    assert [str(m["Subject"]) for _, _, m in parse_output(err)] == ["to stderr"]


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("console:?color=yes", "unknown parameter 'color'"),
        ("console:?stream=printer", "stream must be stdout or stderr"),
        ("console://somewhere", "not a console transport URL"),
    ],
)
def test_bad_console_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        open_transport(url)
