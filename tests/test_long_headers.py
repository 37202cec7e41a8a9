"""No line of a rendered e-mail is longer than 998 octets (RFC 5322 section 2.1.1):
headers fold on white space, else become encoded words; what cannot fit is refused
with the limit named. Checked on the rendered bytes, and through a real SMTP server,
which refuses longer lines ("500 Line too long")."""

from __future__ import annotations

from contextlib import closing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailspool.errors import InvalidMessage
from mailspool.message import Message
from mailspool.mime import render
from mailspool.transports.smtp import SMTPTransport
from tests.fixtures.smtp_server import SMTPSink

from .strategies import header_names, long_header_values
from .test_message import parse


def lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


@settings(max_examples=60, deadline=None)
@given(subject=long_header_values, name=header_names, value=long_header_values, utf8=st.booleans())
def test_every_rendered_line_fits_and_the_values_come_back(
    subject: str, name: str, value: str, utf8: bool
) -> None:
    message = Message(to=("a@example.com",), subject=subject, text="m", headers=((name, value),))
    data = render(message, message_id="<x@example.com>", utf8=utf8)
    assert max(map(len, lines(data))) <= 998
    back = parse(data)
    assert " ".join(back.subject.split()) == " ".join(subject.split())
    assert " ".join((back.header(name) or "").split()) == " ".join(value.split())


def test_a_header_name_too_long_to_fit_is_refused_naming_the_limit() -> None:
    name = "X-" + "n" * 1000
    message = Message(to=("a@example.com",), subject="s", text="m", headers=((name, "v"),))
    with pytest.raises(InvalidMessage, match="998 octets") as info:
        render(message)
    assert info.value.field
    assert name.startswith(info.value.field)


def test_long_subject_and_header_reach_a_real_server(smtp_server: SMTPSink) -> None:
    subject, custom = "x" * 1200, "y" * 1500
    message = Message(
        to=("a@example.com",),
        subject=subject,
        text="m",
        sender="s@example.com",
        headers=(("X-Long", custom), ("X-Words", " ".join(["w" * 40] * 60))),
    )
    with closing(SMTPTransport.from_url(smtp_server.url)) as transport:
        transport.send(message)
    [arrived] = smtp_server.messages
    assert arrived["Subject"] == subject
    assert arrived["X-Long"] == custom
    assert arrived["X-Words"] == " ".join(["w" * 40] * 60)
    assert max(map(len, lines(smtp_server.envelopes[0].content))) <= 998
