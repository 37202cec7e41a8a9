"""The message model and its MIME: stdlib parsing, injection refused, round trips."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from email.utils import parseaddr

import pytest
from hypothesis import HealthCheck, given, settings

from mailspool.email_model import from_email_message, to_email_message
from mailspool.errors import InvalidMessage
from mailspool.headers import parse_headers
from mailspool.message import Attachment, Message, sender_domain, split_addresses
from mailspool.mime import new_message_id, render

from .strategies import messages


def parse(data: bytes) -> Message:
    return from_email_message(BytesParser(policy=policy.default).parsebytes(data))  # type: ignore[arg-type]


def normalised(message: Message) -> dict[str, object]:
    """What survives SMTP, compared by meaning: bodies end in a line break, CRLF and LF
    are the same, and '. <a@b>' and '"." <a@b>' are one address."""

    def body(text: str | None) -> str | None:
        return None if text is None else text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")

    def addresses(values: tuple[str, ...]) -> list[tuple[str, str]]:
        return [parseaddr(value) for value in values]

    return {
        "to": addresses(message.to),
        "cc": addresses(message.cc),
        "reply_to": addresses(message.reply_to),
        "sender": parseaddr(message.sender or ""),
        "subject": message.subject,
        "text": body(message.text),
        "html": body(message.html),
        "charset": message.charset,
        "attachments": message.attachments,
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_render_then_parse_gives_the_model_back(message: Message) -> None:
    data = render(message, message_id="<fixed@example.com>", default_sender="d@example.com")
    assert data.isascii()  # 7-bit: SMTP without 8BITMIME, SES raw
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    back = parse(data)
    expected = (
        message if message.sender else Message(**{**_fields(message), "sender": "d@example.com"})
    )
    assert normalised(back) == normalised(expected)
    assert back.bcc == ()  # never in a header
    assert dict(back.headers)["Message-ID"] == "<fixed@example.com>"
    for name, value in message.headers:
        assert back.header(name) == value


def _fields(message: Message) -> dict[str, object]:
    return {name: getattr(message, name) for name in Message.__dataclass_fields__}


def test_the_stdlib_form_round_trips() -> None:
    message = Message(
        to=("Jürgen Groß <j@example.de>",),
        subject="Grüße",
        text="Hallo",
        html="<p>Hallo</p>",
        sender="Shop <shop@example.com>",
        cc=("c@example.com",),
        reply_to=("r@example.com",),
        attachments=(Attachment("rechnung.pdf", b"%PDF-1.4", "application/pdf"),),
    )
    back = from_email_message(to_email_message(message))
    assert normalised(back) == normalised(message)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"to": ()}, "to"),
        ({"to": ("nobody",)}, "to"),
        ({"to": ("a@example.com\r\nBcc: x@evil.example",)}, "to"),
        ({"cc": ("c@example.com\nX: y",)}, "cc"),
        ({"subject": "hi\nBcc: x@evil.example"}, "subject"),
        ({"subject": "hi\u2028Bcc: x@evil.example"}, "subject"),
        ({"headers": (("X-Tag", "a\x1eBcc: x@evil.example"),)}, "X-Tag"),
        ({"sender": "me@example.com\r\n"}, "from"),
        ({"headers": (("X-Tag", "a\rb"),)}, "X-Tag"),
        ({"headers": (("Bad Name", "v"),)}, "headers"),
        ({"headers": (("Subject", "again"),)}, "headers"),
        ({"text": None, "html": None}, "message"),
        ({"charset": "utf-8\r\n"}, "charset"),
    ],
)
def test_bad_fields_are_refused_by_name(fields: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"to": ("a@example.com",), "subject": "s", "text": "t"}
    with pytest.raises(InvalidMessage) as caught:
        Message(**(base | fields))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_display_names_with_commas_and_unicode_survive() -> None:
    addresses = split_addresses(
        ['"Doe, Jane" <j@example.com>', "Zoë <z@example.com>, b@example.com"]
    )
    assert addresses == ('"Doe, Jane" <j@example.com>', "Zoë <z@example.com>", "b@example.com")
    message = Message(to=addresses, subject="s", text="t")
    assert message.envelope_recipients == ("j@example.com", "z@example.com", "b@example.com")
    header = BytesParser(policy=policy.default).parsebytes(render(message))["To"]
    assert [a.display_name for a in header.addresses] == ["Doe, Jane", "Zoë", ""]


def test_an_international_domain_is_sent_as_idna() -> None:
    data = render(Message(to=("Ö <o@bücher.example>",), subject="s", text="t"))
    assert b"o@xn--bcher-kva.example" in data


def test_a_non_ascii_local_part_is_downgraded_in_7_bit_and_raw_with_smtputf8() -> None:
    message = Message(to=("Jü <jürgen@example.de>", "a@example.de"), subject="s", text="t")
    seven_bit = render(message)
    assert seven_bit.isascii()
    to = BytesParser(policy=policy.default).parsebytes(seven_bit)["To"]
    assert [g.display_name for g in to.groups] == ["Jü <jürgen@example.de>", None]
    assert " <jürgen@example.de>,\r\n a@example.de".encode() in render(message, utf8=True)


def test_new_message_ids_take_the_sender_s_domain() -> None:
    assert new_message_id("Ana <ana@example.org>").endswith("@example.org>")
    assert sender_domain("Ana <ana@example.org>") == "example.org"
    assert sender_domain(None) == sender_domain("no-domain") == ""
    assert new_message_id(None) != new_message_id(None)


def test_a_body_the_charset_cannot_hold_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="iso-8859-1"):
        render(Message(to=("a@example.com",), subject="s", text="日本", charset="iso-8859-1"))


class TestHeaders:
    def test_folded_lines_and_repeated_cc(self) -> None:
        fields = parse_headers(
            "From: A <a@example.com>\r\nCc: c1@example.com\r\nCc: c2@example.com\r\n"
            "X-Long: first\r\n  second\r\n"
        )
        assert fields.sender == "A <a@example.com>"
        assert fields.cc == ("c1@example.com", "c2@example.com")
        assert fields.extra == (("X-Long", "first second"),)

    def test_a_list_of_lines_like_wp_mail(self) -> None:
        fields = parse_headers(
            ["Content-Type: text/html; charset=UTF-8", "Reply-To: r@example.com"]
        )
        assert (fields.content_type, fields.charset, fields.reply_to) == (
            "text/html",
            "utf-8",
            ("r@example.com",),
        )

    @pytest.mark.parametrize("value", ["image/png", "multipart/mixed; boundary=x"])
    def test_only_text_bodies(self, value: str) -> None:
        with pytest.raises(InvalidMessage, match="text/plain or text/html"):
            parse_headers({"Content-Type": value})

    def test_the_caller_cannot_set_to_or_subject_by_header(self) -> None:
        with pytest.raises(InvalidMessage, match="set by mailspool"):
            parse_headers({"To": "x@example.com"})
