"""Hypothesis strategies for e-mails: unicode, long bodies, many recipients."""

from __future__ import annotations

import string
from dataclasses import replace

from hypothesis import strategies as st

from mailspool.message import Attachment, Message

_local = st.text(string.ascii_lowercase + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)
_domain = st.from_regex(r"[a-z][a-z0-9-]{0,10}\.(com|org|de|it|example)", fullmatch=True)
# Display names: any printable unicode without the characters that need quoting.
_name = (
    st.text(
        st.characters(
            blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"),
            blacklist_characters='"\\<>,;:@()[]\r\n\t',
        ),
        min_size=1,
        max_size=20,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def addresses(draw: st.DrawFn) -> str:
    addr = f"{draw(_local)}@{draw(_domain)}"
    if draw(st.booleans()):
        return f"{draw(_name)} <{addr}>"
    return addr


# Header text: no line separators (refused), and no surrounding white space, which RFC 5322
# parsing does not keep.
_line_text = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=80,
).map(str.strip)
# Header values of any length: long runs without white space (built by repetition, as
# drawing thousands of characters is slow) mixed with ordinary words.
long_header_values = st.lists(
    st.one_of(
        _line_text,
        st.tuples(_line_text.filter(bool), st.integers(50, 1600)).map(lambda p: p[0] * p[1]),
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: " ".join(parts).strip())
_chars = st.characters(blacklist_categories=("Cs",))
# Long bodies are built by repetition: drawing 20000 random characters is too slow.
bodies = st.one_of(
    st.text(_chars, max_size=200),
    st.tuples(st.text(_chars, min_size=1, max_size=40), st.integers(100, 600)).map(
        lambda p: p[0] * p[1]
    ),
)
attachments = st.builds(
    Attachment,
    filename=st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='\r\n/\\"'),
        min_size=1,
        max_size=30,
    ).filter(lambda s: s.strip() == s and s),
    content=st.one_of(
        st.binary(max_size=300), st.binary(min_size=1, max_size=20).map(lambda b: b * 500)
    ),
    content_type=st.sampled_from(["application/pdf", "image/png", "text/csv"]),
)
header_names = st.from_regex(r"X-[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)


@st.composite
def messages(draw: st.DrawFn, *, max_recipients: int = 6) -> Message:
    text = draw(st.none() | bodies)
    html = draw(bodies) if text is None else draw(st.none() | bodies)
    names = draw(st.lists(header_names, max_size=3, unique_by=str.lower))
    return Message(
        to=tuple(draw(st.lists(addresses(), min_size=1, max_size=max_recipients))),
        subject=draw(_line_text),
        text=text,
        html=html,
        sender=draw(st.none() | addresses()),
        cc=tuple(draw(st.lists(addresses(), max_size=3))),
        bcc=tuple(draw(st.lists(addresses(), max_size=3))),
        reply_to=tuple(draw(st.lists(addresses(), max_size=2))),
        charset="utf-8",
        headers=tuple((n, draw(_line_text)) for n in names),
        attachments=tuple(draw(st.lists(attachments, max_size=2))),
    )


_label = _line_text.filter(bool)


@st.composite
def labelled_messages(draw: st.DrawFn) -> Message:
    """``messages()`` with tags and metadata (django-anymail's), each in header text."""
    message = draw(messages())
    tags = tuple(draw(st.lists(_label, max_size=4, unique=True)))
    metadata = tuple(draw(st.dictionaries(_label, _line_text, max_size=4)).items())
    return replace(message, tags=tags, metadata=metadata)
