"""A text body's transfer encoding: 7bit when it can be, quoted-printable for a line over
998 octets, else the smaller of quoted-printable and base64 (``mailspool.mime``), decoded
back to the same text."""

from __future__ import annotations

import base64
import binascii
import re
from email import policy, quoprimime
from email.parser import BytesParser
from functools import partial

from hypothesis import assume, example, given
from hypothesis import strategies as st

from mailspool.message import Message
from mailspool.mime import render
from mailspool.transfer_encoding import quoted_printable, transfer_encoding

#: The reference: the whole MIME tree built and written for one message.
render_whole = partial(render, shared=False)

_PARSER = BytesParser(policy=policy.default)
# Russian text with lines over 998 octets: Django's test_send_long_lines
DJANGO_LONG_LINES = "В южных морях " * 60  # noqa: RUF001 - Russian, as Django wrote it


def _sizes(encoded: bytes) -> tuple[int, int]:
    """The octets each encoding takes on the wire (CRLF line ends), computed apart from
    mailspool: quoted-printable as the stdlib body-encodes it, base64 in lines of 76.
    A dot alone at the start of a line (or before a NUL) costs two octets more: the
    encoder writes it ``=2E``, as ``binascii.b2a_qp`` does, so that no line of the body
    is a lone dot, the end of an SMTP DATA."""
    quoted = quoprimime.body_encode(encoded.decode("latin-1"))
    dots = sum(
        1 for line in re.split(rb"\r\n|\r|\n", encoded) if line == b"." or line.startswith(b".\0")
    )
    lines = base64.encodebytes(encoded)
    return len(quoted) + quoted.count("\n") + 2 * dots, len(lines) + lines.count(b"\n")


def _rendered(text: str, charset: str = "utf-8", kind: str = "text") -> bytes:
    message = Message.build(
        sender="s@example.com", to="t@example.com", subject="s", charset=charset, **{kind: text}
    )
    return render(message, message_id="<1@example.com>")


def _lines(text: str) -> str:
    return re.sub(r"\r\n|\r|\n", "\n", text)


_PIECES = st.sampled_from(
    ["a", "Z", " ", "=", ".", "\t", "\n", "\r\n", "é", "ü", "€", "ж", "日", "x" * 400]
) | st.characters(codec="utf-8", exclude_categories=("Cs",))
_TEXTS = st.lists(_PIECES, max_size=80).map("".join)


@given(_TEXTS, st.sampled_from(["utf-8", "iso-8859-1"]), st.sampled_from(["text", "html"]))
@example("\x80\n.", "utf-8", "text")  # a lone dot: "=2E" makes base64 the smaller
def test_7bit_when_it_can_be_else_the_smaller_encoding(text: str, charset: str, kind: str) -> None:
    try:
        encoded = text.encode(charset)
    except UnicodeEncodeError:
        assume(False)
        raise
    data = _rendered(text, charset, kind)
    parsed = _PARSER.parsebytes(data)
    transfer = parsed["Content-Transfer-Encoding"]
    quoted, base64_size = _sizes(encoded)
    if encoded.isascii() and all(len(line) <= 998 for line in encoded.splitlines()):
        assert transfer == "7bit"
    elif any(len(line) > 998 for line in encoded.splitlines()):
        assert transfer == "quoted-printable"  # its soft breaks shorten the line
    elif transfer == "quoted-printable":
        assert quoted <= base64_size
    else:
        assert transfer == "base64"
        assert base64_size < quoted
    assert transfer == transfer_encoding(encoded)
    assert _lines(parsed.get_content()) == _lines(text)
    assert data.isascii()
    if transfer != "7bit":
        assert max(map(len, data.partition(b"\r\n\r\n")[2].split(b"\r\n"))) <= 76


@given(_TEXTS)
def test_the_shared_path_and_the_whole_tree_agree_on_the_encoding(text: str) -> None:
    html = text or "-"
    message = Message.build(
        sender="s@example.com", to="t@example.com", subject="s", text=text, html=html
    )
    expected = [transfer_encoding(text.encode()), transfer_encoding(html.encode())]
    for data in (render(message), render_whole(message)):
        parts = [p for p in _PARSER.parsebytes(data).walk() if p.get_content_maintype() == "text"]
        assert [p["Content-Transfer-Encoding"] for p in parts] == expected


def test_mostly_ascii_text_is_quoted_printable_and_readable() -> None:
    data = _rendered("Je t'aime très fort")
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in data
    assert data.endswith(b"\r\n\r\nJe t'aime tr=C3=A8s fort")


def test_an_ascii_line_over_998_octets_is_quoted_printable_not_base64() -> None:
    data = _rendered("word " * 300 + "\nend\n")
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in data
    body = data.partition(b"\r\n\r\n")[2]
    assert body.startswith(b"word word")
    assert max(map(len, body.split(b"\r\n"))) <= 76


def test_mostly_non_latin_text_is_base64_where_it_is_smaller() -> None:
    text = "В южных морях\n" * 60  # noqa: RUF001 - Russian, in short lines
    encoded = text.encode()
    quoted, base64_size = _sizes(encoded)
    assert base64_size < quoted
    data = _rendered(text)
    assert b"Content-Transfer-Encoding: base64\r\n" in data
    assert _lines(_PARSER.parsebytes(data).get_content()) == _lines(text)
    assert transfer_encoding("日本語のテキスト".encode() * 20) == "base64"


def test_a_line_over_998_octets_is_quoted_printable_as_django_writes_it() -> None:
    """Django's own test_send_long_lines body: one line of 1,500 octets in UTF-8."""
    data = _rendered(DJANGO_LONG_LINES)
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in data
    assert _PARSER.parsebytes(data).get_content() == DJANGO_LONG_LINES
    assert max(map(len, data.partition(b"\r\n\r\n")[2].split(b"\r\n"))) <= 76


def test_iso_2022_jp_stays_7bit() -> None:
    assert b"Content-Transfer-Encoding: 7bit\r\n" in _rendered("日本語", "iso-2022-jp")


@given(
    st.lists(
        st.sampled_from([" ", "\t", "\r", "\n", "\r\n", "=", ".", "a", "é", "x" * 90]), max_size=40
    )
)
def test_quoted_printable_lines_are_short_end_without_white_space_and_decode_back(
    pieces: list[str],
) -> None:
    encoded = "".join(pieces).encode()
    lines = quoted_printable(encoded)
    assert all(len(line) <= 76 and line.isascii() for line in lines)
    assert not any(line.endswith((" ", "\t")) for line in lines)
    decoded = binascii.a2b_qp("\r\n".join(lines)).decode()
    assert _lines(decoded) == _lines(encoded.decode())
