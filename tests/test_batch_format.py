"""The batch file format: the article's version 0, mailspool's version 1, the schemas."""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailspool.errors import InvalidBatch, InvalidMessage
from mailspool.message import Attachment, Message
from mailspool.spool import batch, layout

from .strategies import messages

SENDER = "Site <admin@example.com>"


def schema(version: int) -> dict[str, Any]:
    text = resources.files("mailspool").joinpath(f"schema/batch-v{version}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


V0 = jsonschema.Draft202012Validator(schema(0))
V1 = jsonschema.Draft202012Validator(schema(1), format_checker=jsonschema.FormatChecker())

# Exactly what the article's PHP writes: json_encode escapes "/" and non-ASCII characters.
ARTICLE_FILE = (
    b'{"meta":{"from":"My Site <admin@example.com>","contentType":"text\\/html",'
    b'"charset":"utf-8"},"emails":[{"to":["follower1@example.com","follower2@example.com"],'
    b'"subject":"Nuovo post: Caff\\u00e8","message":"<p>Ciao! \\u00c8 uscito un post.<\\/p>",'
    b'"attachments":[]},{"to":["follower3@example.com"],"subject":"Nuovo post",'
    b'"message":"<p>Ciao<\\/p>","attachments":[""]}]}'
)


def blob_store() -> tuple[dict[str, bytes], batch.BlobWriter]:
    blobs: dict[str, bytes] = {}

    def write(digest: str, content: bytes) -> None:
        blobs[digest] = content

    return blobs, write


class TestVersionZero:
    def test_the_articles_file_validates_and_loads(self) -> None:
        V0.validate(json.loads(ARTICLE_FILE))
        loaded = batch.decode(ARTICLE_FILE, source="queue/16990000001234560.json")
        assert loaded.version == 0
        assert len(loaded) == 2
        first = loaded.message(0)
        assert first.to == ("follower1@example.com", "follower2@example.com")
        assert first.subject == "Nuovo post: Caffè"
        assert first.html == "<p>Ciao! È uscito un post.</p>"
        assert first.text is None
        assert first.sender == "My Site <admin@example.com>"
        assert loaded.message(1).attachments == ()  # PHP's explode() leaves "" behind

    def test_a_plain_text_version_zero_file(self) -> None:
        data = {
            "meta": {"from": "a@example.com", "contentType": "text/plain", "charset": "iso-8859-1"},
            "emails": [{"to": ["b@example.com"], "subject": "s", "message": "body"}],
        }
        message = batch.decode(orjson.dumps(data)).message(0)
        assert (message.text, message.html, message.charset) == ("body", None, "iso-8859-1")

    def test_v1_without_extensions_is_valid_v0(self) -> None:
        message = Message(to=("a@example.com",), subject="Hi", html="<p>x</p>", sender=SENDER)
        data = batch.encode([message], batch_id=layout.new_batch_id(), default_sender=SENDER)
        document = json.loads(data)
        V0.validate(document)
        V1.validate(document)
        assert set(document["meta"]) == {"from", "contentType", "charset"}
        assert set(document["emails"][0]) == {"to", "subject", "message", "attachments"}


class TestRoundTrip:
    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.lists(messages(), min_size=1, max_size=3))
    def test_model_to_file_to_model(self, drawn: list[Message]) -> None:
        blobs, write = blob_store()
        first_key = batch.meta_key(drawn[0], SENDER)
        group = [m for m in drawn if batch.meta_key(m, SENDER) == first_key]
        data = batch.encode(
            group, batch_id=layout.new_batch_id(), default_sender=SENDER, blob_writer=write
        )
        V1.validate(json.loads(data))
        loaded = batch.decode(data)
        for index, original in enumerate(group):
            expected = original if original.sender else _with_sender(original, SENDER)
            assert loaded.message(index, blobs.__getitem__) == expected

    @settings(max_examples=25, deadline=None)
    @given(
        st.integers(min_value=100, max_value=3000),
        st.text(st.characters(categories=("Lu", "Ll", "Lo")), min_size=1, max_size=10),
    )
    def test_many_recipients(self, count: int, name: str) -> None:
        to = tuple(f"{name} {i} <user{i}@example.com>" for i in range(count))
        message = Message(to=to, subject="Hi", text="x")
        data = batch.encode([message], batch_id=layout.new_batch_id(), default_sender=SENDER)
        assert batch.decode(data).message(0).to == message.to

    def test_one_attachment_sent_to_many_is_stored_once(self) -> None:
        invoice = Attachment("invoice.pdf", b"%PDF" * 5000, "application/pdf")
        group = [
            Message(to=(f"u{i}@example.com",), subject="Invoice", html="x", attachments=(invoice,))
            for i in range(50)
        ]
        blobs, write = blob_store()
        data = batch.encode(
            group, batch_id=layout.new_batch_id(), default_sender=SENDER, blob_writer=write
        )
        assert len(blobs) == 1
        assert len(data) < len(invoice.content)  # referenced, not inlined 50 times
        assert batch.decode(data).message(49, blobs.__getitem__).attachments == (invoice,)

    def test_small_attachments_stay_inline(self) -> None:
        small = Attachment("a.txt", b"hello", "text/plain")
        message = Message(to=("a@example.com",), subject="s", text="t", attachments=(small,))
        blobs, write = blob_store()
        data = batch.encode([message], batch_id="x", default_sender=SENDER, blob_writer=write)
        assert blobs == {}
        assert json.loads(data)["emails"][0]["attachments"][0]["content"] == "aGVsbG8="


def _with_sender(message: Message, sender: str) -> Message:
    from dataclasses import replace

    return replace(message, sender=sender)


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": 1,
        "id": "20261127T181348123456Z-1a2b3c4d",
        "createdAt": "2026-11-27T18:13:48Z",
        "meta": {"from": SENDER, "contentType": "text/html", "charset": "utf-8"},
        "emails": [{"to": ["a@example.com"], "subject": "s", "message": "m", "attachments": []}],
    }
    document.update(changes)
    return document


class TestInvalidFiles:
    @pytest.mark.parametrize(
        ("data", "field", "words"),
        [
            (b"{not json", None, "not valid JSON"),
            (b"[]", None, "JSON object"),
            (orjson.dumps(_document(version=7)), "version", "unknown format version 7"),
            (orjson.dumps({"emails": []}), "meta", "Missing required data"),
            (orjson.dumps(_document(emails=[])), "emails", "No emails provided"),
            (orjson.dumps(_document(emails="x")), "emails", "list of e-mails"),
            (orjson.dumps(_document(meta={"from": 3})), "meta.from", "must be a string"),
            (
                orjson.dumps(
                    _document(meta={"from": "a@b.c", "contentType": "image/png", "charset": "x"})
                ),
                "meta.contentType",
                "unsupported content type",
            ),
        ],
    )
    def test_structure_errors_name_the_field(
        self, data: bytes, field: str | None, words: str
    ) -> None:
        with pytest.raises(InvalidBatch) as caught:
            batch.decode(data, source="queue/bad.json")
        assert caught.value.field == field
        assert words in str(caught.value)
        assert "queue/bad.json" in str(caught.value)

    def test_wrong_type_inside_an_email_names_its_index(self) -> None:
        emails = [
            {"to": ["a@example.com"], "subject": "s", "message": "m", "attachments": []},
            {"to": ["b@example.com"], "subject": 5, "message": "m", "attachments": []},
        ]
        with pytest.raises(InvalidBatch) as caught:
            batch.decode(orjson.dumps(_document(emails=emails)), source="f.json")
        assert (caught.value.index, caught.value.field) == (1, "subject")
        assert str(caught.value) == "f.json, e-mail #1, field 'subject': must be a string, not int"

    @pytest.mark.parametrize(
        ("email", "field"),
        [
            ({"to": ["not an address"], "subject": "s", "message": "m", "attachments": []}, "to"),
            (
                {
                    "to": ["a@example.com"],
                    "subject": "s\r\nBcc: x@evil.example",
                    "message": "m",
                    "attachments": [],
                },
                "subject",
            ),
            (
                {
                    "to": ["a@example.com\nBcc: x@evil.example"],
                    "subject": "s",
                    "message": "m",
                    "attachments": [],
                },
                "to",
            ),
        ],
    )
    def test_bad_content_fails_only_that_email(self, email: dict[str, Any], field: str) -> None:
        good = {"to": ["ok@example.com"], "subject": "s", "message": "m", "attachments": []}
        loaded = batch.decode(orjson.dumps(_document(emails=[good, email])), source="f.json")
        assert loaded.message(0).to == ("ok@example.com",)
        with pytest.raises(InvalidMessage) as caught:
            loaded.message(1)
        assert (caught.value.source, caught.value.index, caught.value.field) == ("f.json", 1, field)

    def test_a_missing_blob_is_an_invalid_email(self) -> None:
        attachment = {"filename": "a.pdf", "contentType": "application/pdf", "sha256": "0" * 64}
        email = {
            "to": ["a@example.com"],
            "subject": "s",
            "message": "m",
            "attachments": [attachment],
        }
        loaded = batch.decode(orjson.dumps(_document(emails=[email])))

        def no_blobs(digest: str) -> bytes:
            from mailspool.errors import KeyNotFound

            raise KeyNotFound(digest)

        with pytest.raises(InvalidMessage, match="missing from the store"):
            loaded.message(0, no_blobs)

    @settings(max_examples=200, deadline=None)
    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda c: st.lists(c) | st.dictionaries(st.text(), c),
            max_leaves=20,
        )
    )
    def test_any_json_is_decoded_or_refused_cleanly(self, value: Any) -> None:
        """The parser never fails with anything but InvalidBatch, whatever the JSON."""
        for document in (value, {"meta": value, "emails": value}, _document(emails=[value])):
            try:
                loaded = batch.decode(json.dumps(document))
            except InvalidBatch:
                continue
            for index in range(len(loaded)):
                with contextlib.suppress(InvalidMessage):
                    loaded.message(index)

    @settings(max_examples=300, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["to", "subject", "message", "attachments", "alternatives"]),
            st.none() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.lists(st.text()),
        )
    )
    def test_decoder_and_v1_schema_agree(self, email: dict[str, Any]) -> None:
        document = _document(emails=[email])
        if V1.is_valid(document):
            assert len(batch.decode(orjson.dumps(document))) == 1
        else:
            with pytest.raises(InvalidBatch):
                batch.decode(orjson.dumps(document))

    @settings(max_examples=300, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["to", "subject", "message", "attachments", "other"]),
            st.none() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.lists(st.text()),
        )
    )
    def test_every_file_the_v0_schema_accepts_is_readable(self, email: dict[str, Any]) -> None:
        document = {"meta": _document()["meta"], "emails": [email]}
        if V0.is_valid(document):
            assert batch.decode(orjson.dumps(document)).version == 0
