"""The records a store holds, each encoded and decoded in this one place.

```
queue/<batch>.json                    BatchDocument (checked by ``spool.batch.decode``)
scheduled/<due>-<batch>.json          BatchDocument with a ``Timing`` (``spool.schedule``)
cancelled/<batch>.json                BatchDocument of a cancelled e-mail
keys/<sha256 of the key>.json         KeyRecord: an idempotency key and its batch
ledger/<batch>                        LedgerEntry: one JSON array of entries per record
failed/<batch>.<index>[.refused].json FailedRecord
quarantine/<file>.error.json          QuarantineError
```

Writers build these types and call ``encode``; readers call ``decode``, which treats
what it reads as hostile and raises ``InvalidRecord`` naming the key and the field. The
JSON keys and their order are the format: ``tests/test_store_compat.py`` decodes files
written by earlier versions and checks that encoding them again gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from mailspool.errors import InvalidBatch, InvalidRecord
from mailspool.spool.json_fields import (
    Fields,
    decode_fields,
    field,
    is_int,
    is_text_map,
    json_object,
    str_or_none,
    texts_or_none,
    to_json,
)

__all__ = [
    "CURRENT_VERSION",
    "BatchDocument",
    "BatchOutline",
    "FailedRecord",
    "KeyRecord",
    "LedgerEntry",
    "LedgerState",
    "QuarantineError",
    "Timing",
    "blob_digests",
    "decode_entries",
    "encode_entries",
    "moment",
    "timestamp",
]

#: The batch format version mailspool writes.
CURRENT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def timestamp(moment: datetime | None = None, *, timespec: str = "auto") -> str:
    """RFC 3339 in UTC with a ``Z``, as every record writes its times (``timespec`` as
    ``datetime.isoformat`` takes it: ``"seconds"`` for whole seconds)."""
    at = (moment or datetime.now(UTC)).astimezone(UTC)
    return at.isoformat(timespec=timespec).replace("+00:00", "Z")


def moment(text: object, *, naive: str = "refuse") -> datetime:
    """A time read from a record, a file or the network, in UTC; ValueError saying why.

    RFC 3339 / ISO 8601 with its offset (``2026-11-29T09:00:00Z``, ``...+01:00``).
    Refused: what is not a string or not a time, a time without an offset (unless
    ``naive="utc"``), and a time that leaves the years 1 to 9999 once moved to UTC
    (``0001-01-01T00:00:00+01:00``): every comparison or subtraction with it would raise
    ``OverflowError``, so it is refused here, once, as unreadable.
    """
    if not isinstance(text, str):
        raise ValueError(f"must be a string, not {type(text).__name__}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:64]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if naive != "utc":
            raise ValueError(f"{text[:64]!r} has no time zone offset")
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text[:64]!r} falls outside the years 1 to 9999 in UTC") from None


# -- the batch file -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """A batch's optional ``sendAt``, ``expiresAt`` (RFC 3339, UTC) and idempotency ``key``."""

    send_at: str | None = None
    expires_at: str | None = None
    key: str | None = None

    def fields(self) -> dict[str, str]:
        """The batch file's JSON fields for what is set, in the format's order."""
        named = (("sendAt", self.send_at), ("expiresAt", self.expires_at), ("key", self.key))
        return {name: value for name, value in named if value is not None}


NO_TIMING = Timing()


@dataclass(frozen=True, slots=True)
class BatchDocument:
    """A batch file as mailspool writes it: by the producer, as a continuation, as a retry.

    ``meta`` and ``emails`` are the format's JSON objects (``docs/format.md``); the
    producer builds them from Messages, a continuation or a retry copies them.
    """

    id: str | None
    created_at: str | None
    meta: Mapping[str, Any]
    emails: Sequence[Mapping[str, Any]]
    version: int = CURRENT_VERSION
    timing: Timing = NO_TIMING

    def encode(self) -> bytes:
        document: dict[str, Any] = {"version": self.version} if self.version else {}
        if self.id is not None:
            document["id"] = self.id
        if self.created_at is not None:
            document["createdAt"] = self.created_at
        document.update(self.timing.fields())
        document["meta"] = dict(self.meta)
        document["emails"] = list(self.emails)
        return orjson.dumps(document)


@dataclass(frozen=True, slots=True)
class BatchOutline:
    """What can be told of a batch file without checking it (the worker checks it): how
    many e-mails it holds and the blobs it refers to. For counting and for copying."""

    emails: int
    blobs: tuple[str, ...]

    @classmethod
    def read(cls, data: bytes) -> BatchOutline | None:
        """The outline, or None when the data is not a JSON object."""
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(document, dict):
            return None
        emails = document.get("emails")
        if not isinstance(emails, list):
            return cls(0, ())
        return cls(len(emails), tuple(dict.fromkeys(blob_digests(emails))))


def blob_digests(emails: list[Any]) -> list[str]:
    """The ``sha256`` of each stored attachment (``blobs/``) the e-mails refer to."""
    return [
        item["sha256"]
        for email in emails
        if isinstance(email, dict) and isinstance(email.get("attachments"), list)
        for item in email["attachments"]
        if isinstance(item, dict)
        and isinstance(item.get("sha256"), str)
        and _SHA256.fullmatch(item["sha256"])
    ]


# -- idempotency keys ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """``keys/<sha256 of key>.json``: the key accepted at ``accepted_at`` for ``batch``,
    written to ``location`` (its ``queue/`` or ``scheduled/`` key)."""

    key: str
    batch: str
    location: str
    accepted_at: str

    def encode(self) -> bytes:
        return orjson.dumps(to_json(self, _KEY_FIELDS))

    @classmethod
    def decode(cls, data: bytes, *, source: str) -> KeyRecord:
        return cls(**decode_fields(Fields(json_object(data, source), source), _KEY_FIELDS))


_KEY_FIELDS = (
    field("key", str),
    field("batch", str),
    field("location", str),
    field("acceptedAt", str),
)


# -- the ledger ---------------------------------------------------------------------------


class LedgerState(StrEnum):
    """An e-mail's outcome in its batch's ledger (the ``s`` of an entry)."""

    SENT = "sent"
    FAILED = "failed"
    CONTINUED = "continued"


_STATES = frozenset(state.value for state in LedgerState)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One e-mail's outcome. On disk (JSON key: field): ``i``: index, ``s``: state,
    ``id``: message_id (sent), ``reason`` (failed), ``a``: attempts (sent, failed),
    ``batch``: the batch that carries the e-mail on (continued), ``refused``: the
    recipients refused while the others got the e-mail (sent), ``via``: the member of a
    failover chain that accepted it (sent), ``unanswered``: the members that took its
    content earlier without answering, where it may have arrived too (sent)."""

    index: int
    state: LedgerState
    message_id: str | None = None
    reason: str | None = None
    attempts: int | None = None
    batch: str | None = None
    refused: Mapping[str, str] | None = None
    via: str | None = None
    unanswered: tuple[str, ...] | None = None

    @classmethod
    def sent(
        cls,
        index: int,
        message_id: str,
        attempts: int,
        refused: Mapping[str, str] | None = None,
        *,
        via: str | None = None,
        unanswered: Sequence[str] = (),
    ) -> LedgerEntry:
        return cls(
            index,
            LedgerState.SENT,
            message_id,
            attempts=attempts,
            refused=refused or None,
            via=via,
            unanswered=tuple(unanswered) or None,
        )

    @classmethod
    def failed(cls, index: int, reason: str, attempts: int) -> LedgerEntry:
        return cls(index, LedgerState.FAILED, reason=reason, attempts=attempts)

    @classmethod
    def continued(cls, index: int, batch: str) -> LedgerEntry:
        return cls(index, LedgerState.CONTINUED, batch=batch)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"i": self.index, "s": self.state.value}
        optional = (
            ("id", self.message_id),
            ("reason", self.reason),
            ("a", self.attempts),
            ("batch", self.batch),
            ("refused", None if self.refused is None else dict(self.refused)),
            ("via", self.via),
            ("unanswered", None if self.unanswered is None else list(self.unanswered)),
        )
        entry.update((name, value) for name, value in optional if value is not None)
        return entry

    @classmethod
    def from_json(cls, item: object) -> LedgerEntry | None:
        """An entry read back; None for anything that is not one (a torn or foreign
        write). Fields of the wrong type read as absent."""
        if not isinstance(item, dict):
            return None
        index, state = item.get("i"), item.get("s")
        if not isinstance(index, int) or isinstance(index, bool) or state not in _STATES:
            return None
        refused = item.get("refused")
        return cls(
            index,
            LedgerState(state),
            message_id=str_or_none(item.get("id")),
            reason=str_or_none(item.get("reason")),
            attempts=item["a"] if is_int(item.get("a")) else None,
            batch=str_or_none(item.get("batch")),
            refused=refused if is_text_map(refused) else None,
            via=str_or_none(item.get("via")),
            unanswered=texts_or_none(item.get("unanswered")),
        )


def encode_entries(entries: Sequence[LedgerEntry]) -> bytes:
    """One ledger record: the entries of one group commit, as one JSON array."""
    return orjson.dumps([entry.to_json() for entry in entries])


def decode_entries(record: bytes) -> list[LedgerEntry]:
    """The entries of one ledger record; a torn write from a crash holds none."""
    try:
        items = orjson.loads(record)
    except orjson.JSONDecodeError:
        return []
    decoded = (
        LedgerEntry.from_json(item) for item in (items if isinstance(items, list) else (items,))
    )
    return [entry for entry in decoded if entry is not None]


# -- failed/ and quarantine/ --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """An e-mail that failed for good (``partial``: only the ``refused`` recipients did),
    with the batch's ``meta`` and the ``email`` as they were, so it can be re-queued."""

    batch: str
    index: int
    reason: str
    attempts: int
    retryable: bool
    failed_at: str
    partial: bool
    refused: Mapping[str, str] | None
    meta: Mapping[str, Any]
    email: Mapping[str, Any]

    @property
    def recipients(self) -> list[str]:
        """Who did not get the e-mail: the refused recipients, or its ``to``."""
        if self.refused:
            return list(self.refused)
        return [a for a in self.email.get("to") or () if isinstance(a, str)]

    def to_json(self) -> dict[str, Any]:
        return to_json(self, _FAILED_FIELDS)

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def decode(cls, data: bytes, *, source: str) -> FailedRecord:
        """Read a ``failed/`` record; InvalidRecord names the key and the field."""
        fields = Fields(json_object(data, source), source)
        refused = fields.get("refused", dict, optional=True)
        if refused is not None and not is_text_map(refused):
            raise InvalidRecord("must map addresses to answers", field="refused", source=source)
        return cls(**decode_fields(fields, _FAILED_FIELDS))


_FAILED_FIELDS = (
    field("batch", str),
    field("index", int),
    field("reason", str),
    field("attempts", int),
    field("retryable", bool),
    field("failedAt", str),
    field("partial", bool),
    field("refused", dict, optional=True),
    field("meta", dict),
    field("email", dict),
)


@dataclass(frozen=True, slots=True)
class QuarantineError:
    """Why a batch file was quarantined: ``error`` is the whole message, ``reason``,
    ``field`` and ``index`` its parts (``index``: the e-mail, when one is at fault)."""

    file: str
    error: str
    reason: str
    field: str | None
    index: int | None
    quarantined_at: str

    @classmethod
    def of(cls, key: str, err: InvalidBatch) -> QuarantineError:
        return cls(key, str(err), err.reason, err.field, err.index, timestamp())

    def encode(self) -> bytes:
        return orjson.dumps(to_json(self, _QUARANTINE_FIELDS))

    @classmethod
    def decode(cls, data: bytes, *, source: str) -> QuarantineError:
        """Read a ``quarantine/*.error.json``; InvalidRecord names the key and the field."""
        fields = Fields(json_object(data, source), source)
        return cls(**decode_fields(fields, _QUARANTINE_FIELDS))


_QUARANTINE_FIELDS = (
    field("file", str),
    field("error", str),
    field("reason", str),
    field("field", str, optional=True),
    field("index", int, optional=True),
    field("quarantinedAt", str),
)
