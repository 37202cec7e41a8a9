"""Render once: e-mails that share a body share its encoded MIME parts, and each e-mail's
bytes are those of rendering it alone (``render(shared=False)``, the tree built per e-mail)."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.body_cache import BodyCache, EncodedBody
from mailspool.errors import InvalidMessage
from mailspool.message import Attachment, Message
from mailspool.mime import BODIES, render
from tests.strategies import addresses, messages

#: The reference: the whole MIME tree built and written for one message.
render_whole = partial(render, shared=False)

# A multipart boundary is random in each whole rendering and shared by the e-mails of
# one body when rendered once; everything else must be byte for byte the same.
_BOUNDARY = re.compile(rb'boundary="([^"]+)"')
_DATE = ("Date", "Sun, 29 Nov 2026 07:00:00 GMT")


def _same_boundary(data: bytes) -> bytes:
    for boundary in set(_BOUNDARY.findall(data)):
        data = data.replace(boundary, b"BOUNDARY")
    return data


def _wire(message: Message, render_function: object, utf8: bool) -> bytes:
    assert callable(render_function)
    data = render_function(message, message_id="<1@mailspool.test>", utf8=utf8)
    assert isinstance(data, bytes)
    return _same_boundary(data)


@given(messages(), st.lists(addresses(), min_size=1, max_size=3), st.booleans())
def test_the_bytes_are_those_of_rendering_each_email_alone(
    message: Message, followers: list[str], utf8: bool
) -> None:
    dated = replace(message, headers=(*message.headers, _DATE))
    for follower in followers:
        email = replace(dated, to=(follower,))
        assert _wire(email, render, utf8) == _wire(email, render_whole, utf8)


def test_a_shared_body_is_encoded_once() -> None:
    post = Message.build(
        sender="Blog <blog@example.com>",
        to="f0@example.com",
        subject="A new post",
        text="Hello followers\n" * 50,
        html="<p>Grüße</p>" * 100,
        attachments=[Attachment("menu.pdf", b"%PDF" * 1000, "application/pdf")],
    )
    before = BODIES.encoded
    rendered = [render(replace(post, to=(f"f{i}@example.com",))) for i in range(20)]
    assert BODIES.encoded - before == 1
    assert len({data.partition(b"\r\n\r\n")[2] for data in rendered}) == 1  # one body
    assert [b"To: f7@example.com\r\n" in data for data in rendered].count(True) == 1


def test_the_cache_keeps_at_most_its_size_least_recently_used_out() -> None:
    cache = BodyCache(max_bytes=10)
    bodies = {key: EncodedBody(b"h", key.encode() * 4) for key in ("a", "b", "c")}
    for key in ("a", "b", "a", "c"):  # c pushes out b, the least recently used
        cache.get(key, lambda key=key: bodies[key])  # type: ignore[misc]
    assert cache.encoded == 3
    cache.get("a", lambda: EncodedBody(b"", b""))
    cache.get("b", lambda: bodies["b"])
    assert cache.encoded == 4


_BODY_TEXT = st.lists(
    st.sampled_from(["a", "Z", " ", ".", "\n", "\r", "\r\n", "é", "€", "日", "From ", "x" * 300])
    | st.characters(codec="utf-8"),
    max_size=60,
).map("".join)


@given(
    _BODY_TEXT,
    st.sampled_from(["text", "html"]),
    st.sampled_from(["utf-8", "iso-8859-1", "us-ascii", "iso-2022-jp"]),
    st.booleans(),
)
def test_a_one_part_body_is_written_as_the_generator_writes_it(
    body: str, kind: str, charset: str, utf8: bool
) -> None:
    """One text part is encoded without building its MIME tree: the same bytes, whether
    7-bit (line ends made CRLF), quoted-printable or base64 (non-ASCII, or a line over 998
    octets: whichever is smaller)."""
    built = Message.build(
        sender="blog@example.com", to="f@example.com", subject="s", charset=charset, **{kind: body}
    )
    message = replace(built, headers=(_DATE,))
    try:
        body.encode(charset)
    except UnicodeEncodeError:
        for render_function in (render, render_whole):
            with pytest.raises(InvalidMessage, match=f"cannot be encoded as {charset}"):
                render_function(message)
        return
    assert _wire(message, render, utf8) == _wire(message, render_whole, utf8)
