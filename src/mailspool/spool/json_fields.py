"""Reading hostile JSON records: a file's one JSON object, typed access to its fields
(a wrong or missing field is an ``InvalidRecord`` naming it), and the table of a
record's fields (JSON name in camelCase, attribute in snake_case) that
``spool.records`` encodes and decodes its records with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from mailspool.errors import InvalidMessage, InvalidRecord

__all__ = [
    "Field",
    "Fields",
    "decode_fields",
    "field",
    "is_int",
    "is_text_map",
    "json_object",
    "str_or_none",
    "texts_or_none",
    "to_json",
]


class Field(NamedTuple):
    """One JSON field of a record: its name on disk, the record's attribute, its JSON
    type, and whether it may be null."""

    name: str
    attribute: str
    kind: type[Any]
    optional: bool


def field(name: str, kind: type[Any], *, optional: bool = False) -> Field:
    """A field whose attribute is its JSON name in snake_case (``failedAt``: ``failed_at``)."""
    attribute = _CAMEL_HUMP.sub(lambda hump: f"_{hump.group().lower()}", name)
    return Field(name, attribute, kind, optional)


_CAMEL_HUMP = re.compile(r"[A-Z]")


def to_json(record: object, table: Sequence[Field]) -> dict[str, Any]:
    """The record's JSON object, field by field (mappings as plain dicts for orjson)."""
    values = ((field.name, getattr(record, field.attribute)) for field in table)
    return {name: dict(value) if isinstance(value, Mapping) else value for name, value in values}


def decode_fields(fields: Fields, table: Sequence[Field]) -> dict[str, Any]:
    """The record's attributes read from its JSON object; InvalidRecord names the field."""
    return {
        field.attribute: fields.get(field.name, field.kind, optional=field.optional)
        for field in table
    }


def json_object(
    data: bytes | str, source: str, error: type[InvalidMessage] = InvalidRecord
) -> dict[str, Any]:
    """The JSON object a file holds; ``error`` (naming ``source``) if it holds none."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise error(f"not valid JSON: {err}", source=source) from None
    if not isinstance(document, dict):
        raise error("the file must hold a JSON object", source=source)
    return document


class Fields:
    """Typed access to a decoded JSON object; a wrong or missing field is InvalidRecord."""

    def __init__(self, document: dict[str, Any], source: str) -> None:
        self._document = document
        self._source = source

    def get(self, name: str, kind: type[Any], *, optional: bool = False) -> Any:
        value = self._document.get(name)
        if value is None and optional:
            return None
        # bool is an int to Python, never to the format
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            found = "missing" if name not in self._document else f"not {type(value).__name__}"
            expected = {str: "a string", int: "a whole number", bool: "true or false"}
            wanted = expected.get(kind, "an object")
            raise InvalidRecord(f"must be {wanted} ({found})", field=name, source=self._source)
        return value


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def texts_or_none(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return tuple(value) or None


def is_text_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
