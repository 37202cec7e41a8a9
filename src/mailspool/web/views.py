"""What each page shows, read from the store as typed records (no HTML here)."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from itertools import islice

from mailspool.errors import MailspoolError, ObjectTooLarge
from mailspool.ops import admin
from mailspool.ops.quarantine import QuarantinedFile, list_quarantined
from mailspool.ops.status import QueuedBatch, queued_progress
from mailspool.spool import layout, tally
from mailspool.spool.quarantine import quarantined_files
from mailspool.stores.base import CHUNK_SIZE, Store

__all__ = [
    "FailedRow",
    "RatePoint",
    "failed_rows",
    "per_minute",
    "quarantine_rows",
    "queued_batches",
]

_PAGE_ROWS = 500

#: Small: each sending thread's allocator keeps a few of them around once freed.
_DOWNLOAD_CHUNK = 256 * 1024
#: A download: the bytes of a small file, or the chunks of a large one.
Download = bytes | Generator[bytes, None, None]


@dataclass(frozen=True, slots=True)
class FailedRow:
    id: str
    recipients: list[str]
    subject: str
    reason: str
    attempts: int
    failed_at: str
    retryable: bool
    body: str


@dataclass(frozen=True, slots=True)
class RatePoint:
    minute: int
    sent: int
    failed: int


def queued_batches(store: Store) -> list[QueuedBatch]:
    """The batches in ``queue/``, oldest first, with their progress (the first rows)."""
    return list(islice(queued_progress(store), _PAGE_ROWS))


def failed_rows(store: Store, *, show_bodies: bool) -> list[FailedRow]:
    rows = []
    for item in admin.list_failed(store)[:_PAGE_ROWS]:
        record = item.record
        rows.append(
            FailedRow(
                id=item.id,
                recipients=record.recipients,
                subject=str(record.email.get("subject", "")),
                reason=record.reason,
                attempts=record.attempts,
                failed_at=record.failed_at,
                retryable=record.retryable,
                body=str(record.email.get("message", "")) if show_bodies else "",
            )
        )
    return rows


def quarantine_rows(store: Store) -> list[QuarantinedFile]:
    """The page's quarantined files: the operators' listing, the first rows of it."""
    return list_quarantined(store, limit=_PAGE_ROWS)


def quarantined_file(store: Store, name: str) -> Download | None:
    """A quarantined file by the name the listing shows; None for any other name, or
    if it cannot be read. A file of one chunk at most comes as its bytes; a larger one
    as chunks read while they are sent (it may be far larger than memory should hold;
    its first chunk is read here, to know that it can be)."""
    key = f"{layout.QUARANTINE}{name}"
    listed = islice(quarantined_files(store), _PAGE_ROWS)
    info = next((info for info in listed if info.key == key), None)
    if info is None:
        return None
    try:
        if info.size <= CHUNK_SIZE:
            return store.get_at_most(key, CHUNK_SIZE)
    except ObjectTooLarge:
        pass  # it grew since it was listed
    except MailspoolError:
        return None
    chunks = store.read_chunks(key, _DOWNLOAD_CHUNK)
    try:
        first = next(chunks, b"")
    except MailspoolError:
        chunks.close()
        return None
    return _prepend(first, chunks)


def _prepend(first: bytes, rest: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
    try:
        if first:
            yield first
        yield from rest
    finally:
        rest.close()


def per_minute(store: Store, *, hours: int = 3, now: float | None = None) -> list[RatePoint]:
    """E-mails sent and failed per minute over the last ``hours``, counted when each
    batch finished."""
    moment = time.time() if now is None else now
    counted = tally.read_tally(store, now=moment)
    last = int(moment) // 60
    return [
        RatePoint(minute, *counted.minutes.get(minute, (0, 0)))
        for minute in range(last - hours * 60 + 1, last + 1)
    ]
