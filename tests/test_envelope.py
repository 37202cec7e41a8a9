"""The encrypted file format (``spool.envelope``) and the sealed store around it.

Hostile bytes where an envelope is expected fail with ``Undecryptable`` naming the
source, never another exception; the sealed store keeps every promise of a store
(the store contract); the key setting refuses bad keys without showing them.
"""

from __future__ import annotations

import base64
import json
import os
from importlib import resources

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.config import Settings
from mailspool.errors import ConfigurationError, ObjectTooLarge, Undecryptable
from mailspool.spool.envelope import MARK, Envelope, is_sealed, parse
from mailspool.spool.keyring import Keyring, LocalKey, keyring_of
from mailspool.spool.sealed_store import SealedStore, binding, drop_data_key, sealed
from mailspool.stores import Store
from mailspool.stores.memory import MemoryStore
from tests.store_contract import StoreContract

KEY = os.urandom(32)
RING = Keyring([LocalKey(KEY)])


@pytest.fixture
def store() -> SealedStore:
    return SealedStore(MemoryStore(), RING)


class TestSealedStore(StoreContract):
    """Every promise of ``Store``, kept with every object and record sealed; a listing
    gives the size stored (the envelope's), as the backend knows it without reading."""

    def test_list_reports_size_and_modification_time(self, store: Store) -> None:
        store.put("queue/a.json", b"12345")
        (info,) = store.list("queue/")
        assert info.key == "queue/a.json"
        assert info.size == len(store.inner.get("queue/a.json")) > 5  # type: ignore[attr-defined]
        assert info.modified > 0


def sealed_batch(plaintext: bytes = b'{"version": 1}', key: str = "queue/a.json") -> bytes:
    return SealedStore(MemoryStore(), RING).seal(key, plaintext)


def test_what_is_written_is_an_envelope_and_reads_back() -> None:
    inner = MemoryStore()
    store = SealedStore(inner, RING)
    store.put("queue/a.json", b"hello")
    store.append("ledger/a", b'{"i": 0}')

    assert is_sealed(inner.get("queue/a.json"))
    assert b"hello" not in inner.get("queue/a.json")
    assert store.get("queue/a.json") == b"hello"
    assert all(is_sealed(record) for record in inner.read_log("ledger/a"))
    assert store.read_log("ledger/a") == [b'{"i": 0}']


def test_a_move_between_folders_keeps_the_binding() -> None:
    store = SealedStore(MemoryStore(), RING)
    store.put("queue/a.json", b"x")
    store.put("scheduled/20261129T090000000000Z-b.json", b"y")
    assert store.move("queue/a.json", "done/a.json")
    assert store.move("scheduled/20261129T090000000000Z-b.json", "queue/b.json")
    assert (store.get("done/a.json"), store.get("queue/b.json")) == (b"x", b"y")
    assert binding("failed/a.3.json") == "a.3"


def test_clear_objects_and_records_read_as_they_are() -> None:
    inner = MemoryStore()
    inner.put("queue/a.json", b'{"meta": {}}')
    inner.append("ledger/a", b'{"i": 0}')
    store = sealed(inner, (base64.urlsafe_b64encode(KEY).decode(),))
    assert store.get("queue/a.json") == b'{"meta": {}}'
    assert store.read_log("ledger/a") == [b'{"i": 0}']


def test_a_record_that_does_not_open_is_left_out_as_a_torn_one() -> None:
    inner = MemoryStore()
    store = SealedStore(inner, RING)
    store.append("ledger/a", b"first")
    inner.append("ledger/a", sealed_batch(b"second", "ledger/other"))
    store.append("ledger/a", b"third")
    assert store.read_log("ledger/a") == [b"first", b"third"]


def test_the_limit_applies_to_the_plaintext() -> None:
    store = SealedStore(MemoryStore(), RING)
    store.put("queue/a.json", b"x" * 1000)
    assert store.get_at_most("queue/a.json", 1000) == b"x" * 1000
    with pytest.raises(ObjectTooLarge, match="MAILSPOOL_X=999"):
        store.get_at_most("queue/a.json", 999, "MAILSPOOL_X")


def test_no_key_means_no_envelope() -> None:
    inner = MemoryStore()
    assert sealed(inner, ()) is inner


@pytest.mark.parametrize(
    "value", ["short", "x" * 44, base64.urlsafe_b64encode(os.urandom(31)).decode(), "kms:"]
)
def test_a_bad_key_is_refused_without_being_shown(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        keyring_of(Settings.load(encryption_key=value).encryption_key)
    assert "ENCRYPTION_KEY" in str(caught.value).upper()
    assert value not in str(caught.value) or len(value) < 5


def test_an_unreadable_key_file_names_the_file(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match="key file"):
        keyring_of(("file:/nonexistent/mailspool.key",))


# -- hostile bytes -------------------------------------------------------------------------


def open_hostile(data: bytes, key: str = "queue/a.json") -> None:
    """Read ``data`` as if found at ``key``: it opens, or fails with a named reason."""
    inner = MemoryStore()
    inner.put(key, data)
    try:
        SealedStore(inner, RING).get(key)
    except Undecryptable as err:
        refused = str(err)
    else:
        return
    assert key in refused


@given(st.binary(max_size=400))
def test_any_bytes_open_or_are_refused_with_a_reason(data: bytes) -> None:
    open_hostile(data)
    open_hostile(MARK + data)


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=60),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@given(
    st.sampled_from(["mailspool_encrypted", "alg", "kid", "wrapped_key", "nonce", "ciphertext"]),
    _FIELD_VALUES,
)
def test_a_field_changed_to_anything_is_refused_with_a_reason(field: str, value: object) -> None:
    document = orjson.loads(sealed_batch())
    document[field] = value
    try:
        open_hostile(json.dumps(document, separators=(",", ":")).encode())
    except Exception as err:  # pragma: no cover - the assertion's message
        pytest.fail(f"{field}={value!r}: {type(err).__name__}: {err}")


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_refused_or_harmless(position: int, flip: int) -> None:
    data = bytearray(sealed_batch(b"secret body"))
    data[position % len(data)] ^= flip
    inner = MemoryStore()
    inner.put("queue/a.json", bytes(data))
    try:
        found = SealedStore(inner, RING).get("queue/a.json")
    except Undecryptable:
        return
    # untouched plaintext, or (the mark itself changed) the bytes as found, still sealed
    assert found == b"secret body" or (found == bytes(data) and not is_sealed(found))


SCHEMA = jsonschema.Draft202012Validator(
    json.loads(resources.files("mailspool").joinpath("schema/encrypted-v1.schema.json").read_text())
)


@given(st.binary(max_size=300), st.text(max_size=40))
def test_every_envelope_written_is_valid_under_the_published_schema(
    plaintext: bytes, name: str
) -> None:
    made = RING.new_data_key()
    envelope = Envelope.seal(
        plaintext, binding=name, kid=made.kid, data_key=made.key, wrapped_key=made.wrapped
    )
    SCHEMA.validate(orjson.loads(envelope.encode()))


def test_an_envelope_round_trips_through_parse() -> None:
    made = RING.new_data_key()
    envelope = Envelope.seal(
        b"x", binding="a", kid=made.kid, data_key=made.key, wrapped_key=made.wrapped
    )
    encoded = envelope.encode()
    assert encoded.startswith(MARK)
    assert b"\n" not in encoded
    assert parse(encoded, "s") == envelope
    assert parse(encoded, "s").open(made.key, binding="a", source="s") == b"x"
    with pytest.raises(Undecryptable, match="another name"):
        parse(encoded, "s").open(made.key, binding="b", source="s")


def test_a_dropped_data_key_leaves_the_object_listed_and_never_open() -> None:
    inner = MemoryStore()
    store = SealedStore(inner, RING)
    store.put("done/a.json", b"secret body")
    inner.put("done/clear.json", b"{}")

    assert drop_data_key(store, "done/a.json")
    assert not drop_data_key(store, "done/clear.json")  # clear: redact or delete instead
    assert list(store.keys("done/")) == ["done/a.json", "done/clear.json"]
    with pytest.raises(Undecryptable, match="dropped"):
        store.get("done/a.json")
    assert b'"wrapped_key":""' in inner.get("done/a.json")
    SCHEMA.validate(orjson.loads(inner.get("done/a.json")))


def test_what_a_backend_has_beside_the_contract_shows_through() -> None:
    inner = MemoryStore()
    inner.bucket = "b"  # type: ignore[attr-defined]
    store = SealedStore(inner, RING)
    assert store.bucket == "b"  # type: ignore[attr-defined]
    assert store.url == inner.url
    with pytest.raises(AttributeError):
        store.nothing_of_the_kind  # type: ignore[attr-defined]  # noqa: B018


@given(st.text(max_size=120))
def test_any_key_setting_is_accepted_or_refused_by_name(value: str) -> None:
    try:
        specs = Settings.load(encryption_key=value).encryption_key
        keyring_of.__wrapped__(specs)  # not cached: a hostile value is tried once
    except ConfigurationError as err:
        refused = str(err).lower()
    else:
        return
    assert "encryption_key" in refused
