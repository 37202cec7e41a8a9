"""The store's records: what is written reads back as itself; hostile input is refused
with an error naming the key and the field, never a crash."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.errors import InvalidRecord
from mailspool.spool.records import (
    BatchOutline,
    FailedRecord,
    LedgerEntry,
    QuarantineError,
    decode_entries,
    encode_entries,
)

_text = st.text(max_size=30)
_refused = st.dictionaries(_text, _text, min_size=1, max_size=3)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_index = st.integers(min_value=0, max_value=10**6)
_entries = st.one_of(
    st.builds(LedgerEntry.sent, _index, _text, st.integers(1, 9), st.none() | _refused),
    st.builds(LedgerEntry.failed, _index, _text, st.integers(1, 9)),
    st.builds(LedgerEntry.continued, _index, _text),
)


@given(st.lists(_entries, min_size=1, max_size=5))
def test_ledger_entries_read_back_as_written(entries: list[LedgerEntry]) -> None:
    assert decode_entries(encode_entries(entries)) == entries


@given(st.binary(max_size=200) | _json.map(orjson.dumps))
def test_a_ledger_record_of_any_bytes_reads_as_entries_or_nothing(data: bytes) -> None:
    for entry in decode_entries(data):
        assert isinstance(entry.index, int)
        assert decode_entries(encode_entries([entry])) == [entry]


def test_ledger_entries_use_the_short_keys_on_disk() -> None:
    entry = LedgerEntry.sent(3, "<id@x>", 2, {"a@x": "550 no"})
    assert encode_entries([entry]) == (
        b'[{"i":3,"s":"sent","id":"<id@x>","a":2,"refused":{"a@x":"550 no"}}]'
    )


@given(
    st.builds(
        FailedRecord,
        batch=_text,
        index=_index,
        reason=_text,
        attempts=st.integers(1, 9),
        retryable=st.booleans(),
        failed_at=_text,
        partial=st.booleans(),
        refused=st.none() | _refused,
        meta=st.dictionaries(_text, _json, max_size=3),
        email=st.dictionaries(_text, _json, max_size=3),
    )
)
def test_failed_records_read_back_as_written(record: FailedRecord) -> None:
    assert FailedRecord.decode(record.encode(), source="failed/x.json") == record


def refusal(decode: Callable[..., object], data: bytes, source: str) -> InvalidRecord | None:
    """The error ``decode`` raised, or None when it read the data (any other error fails)."""
    try:
        decode(data, source=source)
    except InvalidRecord as err:
        return err
    return None


@given(st.dictionaries(_text, _json, max_size=6) | _json)
def test_a_hostile_failed_record_names_the_key(document: object) -> None:
    error = refusal(FailedRecord.decode, orjson.dumps(document), "failed/x.0.json")
    assert error is None or error.source == "failed/x.0.json"


def test_a_wrong_field_is_named() -> None:
    record = FailedRecord("b", 0, "r", 1, False, "t", False, None, {}, {"to": ["a@x"]})
    document = orjson.loads(record.encode()) | {"attempts": "3"}
    with pytest.raises(InvalidRecord) as raised:
        FailedRecord.decode(orjson.dumps(document), source="failed/b.0.json")
    assert str(raised.value) == (
        "failed/b.0.json, field 'attempts': must be a whole number (not str)"
    )
    with pytest.raises(InvalidRecord, match=r"^failed/b\.0\.json: not valid JSON"):
        FailedRecord.decode(b"{", source="failed/b.0.json")


@given(_json)
def test_a_hostile_quarantine_error_names_the_key(document: object) -> None:
    source = "quarantine/x.json.error.json"
    error = refusal(QuarantineError.decode, orjson.dumps(document), source)
    assert error is None or error.source == source


@given(st.binary(max_size=200) | _json.map(orjson.dumps))
def test_an_outline_of_any_bytes_names_only_real_blobs(data: bytes) -> None:
    outline = BatchOutline.read(data)
    if outline is not None:
        assert outline.emails >= 0
        assert all(len(d) == 64 and set(d) <= set("0123456789abcdef") for d in outline.blobs)


def test_an_outline_skips_a_blob_reference_that_is_not_a_hash() -> None:
    digest = "ab" * 32
    attachments = [{"sha256": digest}, {"sha256": "../../etc/passwd"}]
    data = orjson.dumps({"emails": [{"attachments": attachments}, "junk"]})
    assert BatchOutline.read(data) == BatchOutline(2, (digest,))
