"""Fuzz the batch reader: arbitrary bytes and arbitrary JSON through ``batch.decode``,
``Batch.message`` and the worker's guards raise ``InvalidBatch`` / ``InvalidMessage``
(or ``SenderNotAllowed``) and nothing else.

Time stays bounded by construction: each input is at most a few kilobytes, and every
test runs a fixed number of examples (derandomized in CI, see ``conftest.py``)."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailspool.errors import InvalidBatch, InvalidMessage, KeyNotFound, SenderNotAllowed
from mailspool.policy.allowed_senders import AllowedSenders
from mailspool.policy.guards import Guards
from mailspool.policy.limits import Limits
from mailspool.spool import batch

EXAMPLES = settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Values that look like the format's, so that examples get past decode into message().
addresses = st.sampled_from(
    ["a@example.com", "Ana <a@example.com>", "a@x, b@y", "bad", "", "a@\u00e9.com", "\n"]
)
format_like = st.one_of(
    json_values,
    addresses,
    st.lists(addresses, max_size=3),
    st.sampled_from(
        ["text/html", "text/plain; charset=utf-8", "utf-8", "latin-1", "nope", "/etc/passwd"]
    ),
)
attachments = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.fixed_dictionaries(
            {"filename": format_like, "contentType": format_like},
            optional={
                "content": st.one_of(format_like, st.sampled_from(["aGk=", "!!"])),
                "sha256": st.one_of(format_like, st.just("a" * 64)),
                "size": format_like,
            },
        ),
    ),
    max_size=3,
)
emails = st.fixed_dictionaries(
    {"to": format_like, "subject": format_like, "message": format_like},
    optional={"attachments": st.one_of(attachments, format_like), "alternatives": format_like},
)
documents = st.fixed_dictionaries(
    {
        "meta": st.fixed_dictionaries(
            {"from": format_like, "contentType": format_like, "charset": format_like},
            optional={
                "cc": format_like,
                "bcc": format_like,
                "replyTo": format_like,
                "headers": st.one_of(
                    st.dictionaries(st.text(max_size=12), format_like, max_size=3), format_like
                ),
            },
        ),
        "emails": st.lists(emails, max_size=3),
    },
    optional={
        "version": st.one_of(st.sampled_from([0, 1, 2, True]), format_like),
        "id": format_like,
        "createdAt": format_like,
    },
)


def blobs(digest: str) -> bytes:
    if digest.startswith("0"):
        raise KeyNotFound(digest)
    return b"not what the hash says"


def read_every_email(data: bytes) -> None:
    """Decode, then read each e-mail plainly and through the guards; only the format's
    errors may come out."""
    try:
        loaded = batch.decode(data, source="queue/fuzz.json")
    except InvalidBatch:
        return
    guards = Guards(
        limits=Limits(recipients=2, attachments=2), senders=AllowedSenders.parse("@example.com")
    )
    for index in range(len(loaded)):
        with contextlib.suppress(InvalidMessage):
            loaded.message(index, blobs)
        with contextlib.suppress(InvalidMessage, SenderNotAllowed):
            guards.read(loaded, index, blobs, "Site <site@example.com>")


@EXAMPLES
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_the_formats_errors(data: bytes) -> None:
    read_every_email(data)


@EXAMPLES
@given(json_values)
def test_arbitrary_json_raises_only_the_formats_errors(value: object) -> None:
    read_every_email(json.dumps(value).encode())


@EXAMPLES
@given(documents)
def test_batch_shaped_json_raises_only_the_formats_errors(document: dict[str, object]) -> None:
    read_every_email(json.dumps(document).encode())
