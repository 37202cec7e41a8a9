"""The redaction ``erase`` applies to each object, as properties: whatever JSON or bytes
hold the address, in whatever spelling, none is left and JSON stays JSON; what does not
hold it comes back byte for byte; an address that merely contains it is kept."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from mailspool.ops.erase_match import ERASED, AddressMatch
from mailspool.ops.erase_redact import ERASED_EMAIL, redact_bytes

MATCH = AddressMatch.of("ana@bücher.example")
SPELLINGS = [
    "ana@bücher.example",
    "ANA@BÜCHER.EXAMPLE",
    "ana@xn--bcher-kva.example",
    '"ana"@xn--BCHER-kva.example',
    "Ana Müller <Ana@Bücher.Example>",
    "=?utf-8?q?Ana_M=C3=BCller?= <ana@xn--bcher-kva.example>",
]
OTHERS = ["bob.ana@bücher.example", "ana@bücher.example.org", "hana@xn--bcher-kva.example"]
WORDS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="@"), max_size=12)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | WORDS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WORDS, inner, max_size=4),
    max_leaves=20,
)


def plant(value: Any, spelling: str, path: list[int]) -> Any:
    """``value`` with ``spelling`` put somewhere: as a list element, a map value, or
    inside a text."""
    if isinstance(value, list) and value and path:
        index = path[0] % len(value)
        return [*value[:index], plant(value[index], spelling, path[1:]), *value[index + 1 :]]
    if isinstance(value, dict) and value and path:
        key = sorted(value)[path[0] % len(value)]
        return {**value, key: plant(value[key], spelling, path[1:])}
    if isinstance(value, str):
        return f"{value} {spelling}, {value}"
    return [value, spelling]


@given(json_values, st.sampled_from(SPELLINGS), st.lists(st.integers(0, 9), max_size=6))
def test_no_spelling_is_left_in_json(value: Any, spelling: str, path: list[int]) -> None:
    data = orjson.dumps(plant(value, spelling, path))
    redacted = redact_bytes(data, MATCH)
    assert not MATCH.found_in(redacted.data)
    assert b"m\xc3\xbcller" not in redacted.data.lower()
    assert b"m=c3=bcller" not in redacted.data.lower()
    orjson.loads(redacted.data)
    assert not redacted.unparsed


@given(json_values)
def test_what_does_not_hold_it_is_left_as_it_is(value: Any) -> None:
    data = orjson.dumps(value)
    assert redact_bytes(data, MATCH).data == data


@given(st.binary(max_size=200), st.sampled_from(SPELLINGS[:4]), st.binary(max_size=200))
def test_any_bytes_lose_it(before: bytes, spelling: str, after: bytes) -> None:
    data = before + b" " + spelling.encode() + b" " + after
    redacted = redact_bytes(data, MATCH)
    assert not MATCH.found_in(redacted.data)


def test_other_addresses_are_kept() -> None:
    data = orjson.dumps({"to": OTHERS, "message": " ".join(OTHERS)})
    assert redact_bytes(data, MATCH).data == data


def test_an_e_mail_to_it_alone_keeps_its_place_and_loses_its_content() -> None:
    emails = [
        {"to": ["Ana <ana@bücher.example>"], "subject": "s", "message": "m", "attachments": []},
        {"to": ["bob@example.com", "ana@bücher.example"], "subject": "t", "message": "m"},
    ]
    redacted = redact_bytes(orjson.dumps({"emails": emails}), MATCH)
    assert orjson.loads(redacted.data)["emails"] == [
        ERASED_EMAIL,
        {"to": ["bob@example.com"], "subject": "t", "message": "m"},
    ]
    assert (redacted.emails, redacted.emptied) == (2, 1)


def test_a_record_nested_deeper_than_any_mailspool_writes_is_scrubbed_as_bytes() -> None:
    deep: Any = "ana@bücher.example"
    for _ in range(100):
        deep = [deep]
    redacted = redact_bytes(orjson.dumps(deep), MATCH)
    assert redacted.unparsed
    assert ERASED.encode() in redacted.data
    assert not MATCH.found_in(redacted.data)
