"""The tests every transport must pass, whatever carries the message.

A test module subclasses ``TransportContract`` (the name does not start with ``Test``,
so it is not collected on its own) and provides two fixtures:

- ``transport``: a ready ``Transport``, closed by the fixture;
- ``delivered``: a callable returning what arrived so far, in order, as
  ``(envelope_sender, envelope_recipients, parsed EmailMessage)`` triples
  (parsed with ``policy.default``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any

from mailspool.email_model import from_email_message
from mailspool.errors import MailspoolError
from mailspool.message import Attachment, Message
from mailspool.transports import Receipt, Transport

__all__ = ["Arrived", "Delivered", "TransportContract", "simple_message"]

Arrived = tuple[str, tuple[str, ...], EmailMessage]
Delivered = Callable[[], list[Arrived]]

SENDER = "Jürgen Groß <juergen@example.de>"


def simple_message(subject: str = "Hello", **fields: Any) -> Message:
    """A small valid message; ``fields`` override or add ``Message.build`` arguments."""
    arguments: dict[str, Any] = {
        "sender": "sender@example.com",
        "to": "rcpt@example.com",
        "subject": subject,
        "text": "Hello\n",
    }
    arguments.update(fields)
    return Message.build(**arguments)


def _lines(text: str | None) -> str | None:
    """Bodies in 7-bit parts keep the wire's CRLF when parsed; compare line by line."""
    return None if text is None else text.replace("\r\n", "\n")


def _only(delivered: Delivered) -> Arrived:
    arrived = delivered()
    assert len(arrived) == 1, f"expected one message, got {len(arrived)}"
    return arrived[0]


class TransportContract:
    """What every transport promises; see the module docstring for the fixtures."""

    def test_headers_and_bodies_arrive_intact(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        message = Message.build(
            sender=SENDER,
            to=["Zoë Ünicode <zoe@example.com>", "plain@example.org"],
            cc='"Doe, Jane" <jane@example.net>',
            reply_to="Réponses <replies@example.com>",
            subject="Grüße — ✓ 日本語 " + "a long subject " * 8,
            text="Hello\nWörld — ünïcode ✓\n",
            html="<p>Hello <b>Wörld</b> ✓</p>\n",
            headers={"X-Campaign": "spring-2026"},
        )
        transport.send(message)
        sender, recipients, arrived = _only(delivered)
        got = from_email_message(arrived)
        assert sender == "juergen@example.de"
        assert recipients == ("zoe@example.com", "plain@example.org", "jane@example.net")
        assert (got.sender, got.to, got.cc, got.reply_to) == (
            message.sender,
            message.to,
            message.cc,
            message.reply_to,
        )
        assert got.subject == message.subject
        assert arrived.get_content_type() == "multipart/alternative"
        assert _lines(got.text) == message.text
        assert _lines(got.html) == message.html
        assert arrived["X-Campaign"] == "spring-2026"

    def test_charset_is_kept(self, transport: Transport, delivered: Delivered) -> None:
        message = simple_message("Café", text="Café crème à la carte\n", charset="iso-8859-1")
        transport.send(message)
        _, _, arrived = _only(delivered)
        body = arrived.get_body(("plain",))
        assert body is not None
        assert body.get_content_charset() == "iso-8859-1"
        assert _lines(body.get_content()) == "Café crème à la carte\n"
        assert arrived["Subject"] == "Café"

    def test_html_only_message(self, transport: Transport, delivered: Delivered) -> None:
        transport.send(simple_message(text=None, html="<h1>Only HTML</h1>\n"))
        _, _, arrived = _only(delivered)
        assert arrived.get_content_type() == "text/html"
        assert _lines(arrived.get_content()) == "<h1>Only HTML</h1>\n"

    def test_attachments_arrive_intact(self, transport: Transport, delivered: Delivered) -> None:
        attachments = (
            Attachment("résumé.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 40, "application/pdf"),
            Attachment("notes.txt", b"plain text\r\nsecond line\n", "text/plain"),
            Attachment("empty.bin", b""),
        )
        transport.send(simple_message(attachments=attachments))
        _, _, arrived = _only(delivered)
        got = from_email_message(arrived)
        assert got.attachments == attachments
        assert _lines(got.text) == "Hello\n"

    def test_bcc_reaches_the_envelope_and_no_header(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        transport.send(simple_message(bcc=["Secret Person <secret@example.com>"]))
        _, recipients, arrived = _only(delivered)
        assert recipients == ("rcpt@example.com", "secret@example.com")
        assert "Bcc" not in arrived
        assert b"secret@example.com" not in arrived.as_bytes()

    def test_bcc_only_message(self, transport: Transport, delivered: Delivered) -> None:
        transport.send(simple_message(to=None, bcc="hidden@example.com"))
        _, recipients, arrived = _only(delivered)
        assert recipients == ("hidden@example.com",)
        assert "To" not in arrived
        assert b"hidden@example.com" not in arrived.as_bytes()

    def test_given_message_id_is_used(self, transport: Transport, delivered: Delivered) -> None:
        receipt = transport.send(simple_message(), message_id="<fixed-1@mailspool.test>")
        _, _, arrived = _only(delivered)
        assert receipt == Receipt("<fixed-1@mailspool.test>")
        assert arrived["Message-ID"] == "<fixed-1@mailspool.test>"

    def test_generated_message_id_is_the_one_sent(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        first = transport.send(simple_message("one"))
        second = transport.send(simple_message("two"))
        ids = [arrived["Message-ID"] for _, _, arrived in delivered()]
        assert ids == [first.message_id, second.message_id]
        assert first.message_id != second.message_id
        assert first.message_id.startswith("<")
        assert first.message_id.endswith("@example.com>")

    def test_the_message_own_id_wins(self, transport: Transport, delivered: Delivered) -> None:
        message = simple_message(headers={"Message-ID": "<own@mailspool.test>"})
        receipt = transport.send(message, message_id="<other@mailspool.test>")
        _, _, arrived = _only(delivered)
        assert receipt.message_id == "<own@mailspool.test>"
        assert arrived.get_all("Message-ID") == ["<own@mailspool.test>"]

    def test_many_threads_each_message_arrives_once(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        subjects = [f"message {number}" for number in range(40)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            receipts = list(pool.map(lambda s: transport.send(simple_message(s)), subjects))
        arrived = delivered()
        assert Counter(str(message["Subject"]) for _, _, message in arrived) == Counter(subjects)
        assert len({receipt.message_id for receipt in receipts}) == len(subjects)
        assert {message["Message-ID"] for _, _, message in arrived} == {
            receipt.message_id for receipt in receipts
        }

    def test_send_after_close_works_or_raises_clearly(
        self, transport: Transport, delivered: Delivered
    ) -> None:
        transport.send(simple_message("before close"))
        transport.close()
        refusal: MailspoolError | None = None
        try:
            transport.send(simple_message("after close"))
        except MailspoolError as err:
            refusal = err
        subjects = [str(message["Subject"]) for _, _, message in delivered()]
        if refusal is None:
            assert subjects == ["before close", "after close"]
        else:
            assert "closed" in str(refusal).lower()
            assert subjects == ["before close"]

    def test_close_twice_is_harmless(self, transport: Transport) -> None:
        transport.close()
        transport.close()
        assert type(transport).__name__ in repr(transport)
        assert repr(transport).endswith(f"{transport.url}>")
