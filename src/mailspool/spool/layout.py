"""Where things live in a store: one function per kind of key.

```
queue/<batch>.json            a batch waiting or being delivered (the trigger key on S3)
ledger/<batch>                its ledger: one record per e-mail sent or failed
done/<batch>.json             a finished batch (``MAILSPOOL_RETENTION``'s finished state)
failed/<batch>.<index>.json   an e-mail that failed for good, with the reason
failed/<batch>.<index>.refused.json   recipients refused while the others got the e-mail
quarantine/<batch-file>       a file that could not be read, beside <batch-file>.error.json
blobs/<sha256>                an attachment stored once, referenced by hash
paused/<worker>.json          a worker's transport that is down: since when, next try
returned/<id>                 a returned message SES receiving wrote, for the Lambda handler
scheduled/ cancelled/ keys/   e-mails sent later, cancelled, idempotency keys
                              (``mailspool.spool.schedule``)
erasures/<time>-<id>.json     what ``mailspool erase`` did, without the address
                              (``mailspool.ops.erase``); ``erasures/key``: the keyed
                              hash's key (``mailspool.feedback.keyed``)
```
The feedback folders (``suppression/``, ``history/``, ``events/``...) are listed in
``mailspool.feedback.layout``; the folders that may expire, per state, in
``mailspool.retention.PREFIXES``.
Batch ids sort by creation time, so listing ``queue/`` yields the oldest first; a
priority batch (``priority_batch_id``: a priority e-mail the priority transport could
not take, ``<id>-now``) is delivered before every other (``spool.queue_scan``).
Every name a key is drawn from is checked on the way in (``keys``): ids and digests
read from the store or from an event cannot reach outside their folder.

A key is a plain relative path (``stores.base.check_key``); under ``queue/`` only
``queue/<name>.json`` is a batch (``classify_queue_key``): anything else found there
is set aside (``spool.queue_scan``), never delivered.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

from mailspool.errors import UnsafeKey
from mailspool.spool.keys import check_digest, check_name, is_safe_name
from mailspool.stores.base import key_problem

__all__ = [
    "BLOBS",
    "DONE",
    "FAILED",
    "LEDGER",
    "PAUSED",
    "QUARANTINE",
    "QUEUE",
    "QUOTA_KEY",
    "RETURNED",
    "QueueKey",
    "as_priority",
    "batch_id_from_key",
    "blob_key",
    "classify_queue_key",
    "done_key",
    "error_key",
    "failed_key",
    "foreign_quarantine_key",
    "id_time",
    "is_batch_key",
    "is_error_key",
    "is_partial_failure",
    "is_priority_batch",
    "ledger_key",
    "new_batch_id",
    "pause_key",
    "priority_batch_id",
    "quarantine_error_key",
    "quarantine_key",
    "queue_key",
    "queue_key_rule",
    "queued_batch_id",
]

QUEUE = "queue/"
LEDGER = "ledger/"
DONE = "done/"
FAILED = "failed/"
QUARANTINE = "quarantine/"
BLOBS = "blobs/"
PAUSED = "paused/"
#: the provider's 24-hour quota as a worker last saw it (``spool.quota_record``)
QUOTA_KEY = "quota/account.json"
RETURNED = "returned/"
_SUFFIX = ".json"
_ERROR_SUFFIX = f".error{_SUFFIX}"


def new_batch_id(now: float | None = None) -> str:
    """``20261127T181348123456Z-1a2b3c4d``: UTC time to the microsecond, then randomness."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{moment:%Y%m%dT%H%M%S%fZ}-{os.urandom(4).hex()}"


_PRIORITY_MARK = "-now"


def priority_batch_id(now: float | None = None) -> str:
    """A batch id the queue delivers first: ``new_batch_id`` + ``-now``."""
    return as_priority(new_batch_id(now))


def as_priority(batch_id: str) -> str:
    """``batch_id`` marked as a priority batch's."""
    return f"{batch_id}{_PRIORITY_MARK}"


def is_priority_batch(key_or_id: str) -> bool:
    """True for a priority batch's id or key (``queue/<id>-now.json``)."""
    return batch_id_from_key(key_or_id).endswith(_PRIORITY_MARK)


def id_time(batch_id: str) -> float | None:
    """The creation time encoded in a batch id, or None for ids of another shape."""
    try:
        moment = datetime.strptime(batch_id[:22], "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def pause_key(owner: str) -> str:
    """A worker's record of its transport being down (``spool.pauses``); the owner's
    name (``host:pid:random``) is hashed into the key."""
    return f"{PAUSED}{hashlib.sha256(owner.encode()).hexdigest()[:20]}{_SUFFIX}"


def queue_key(batch_id: str) -> str:
    """A batch waiting for delivery, or being delivered."""
    return f"{QUEUE}{check_name(batch_id)}{_SUFFIX}"


def done_key(batch_id: str) -> str:
    """A finished batch: the one folder, with the ledgers, that may expire."""
    return f"{DONE}{check_name(batch_id)}{_SUFFIX}"


def ledger_key(batch_id: str) -> str:
    """The log of a batch's outcomes, one record per e-mail."""
    return f"{LEDGER}{check_name(batch_id)}"


def failed_key(batch_id: str, index: int, *, partial: bool = False) -> str:
    """A failed e-mail; ``partial``: only some of its recipients were refused."""
    return f"{FAILED}{check_name(batch_id)}.{int(index)}{'.refused' if partial else ''}{_SUFFIX}"


def is_partial_failure(key: str) -> bool:
    """True for a failed record of an e-mail that reached some of its recipients."""
    return key.endswith(f".refused{_SUFFIX}")


def quarantine_key(batch_key: str) -> str:
    """Where a batch file that cannot be read is set aside, under its own name."""
    return f"{QUARANTINE}{check_name(batch_key.rpartition('/')[2], 'file name')}"


def quarantine_error_key(batch_key: str) -> str:
    """The error beside a quarantined file: which e-mail and which field."""
    return error_key(quarantine_key(batch_key))


def blob_key(digest: str) -> str:
    """A large attachment, stored once under its SHA-256 and shared by batches."""
    return f"{BLOBS}{check_digest(digest)}"


def queued_batch_id(key: str) -> str:
    """The id of ``queue/<id>.json``, checked; ``UnsafeKey`` for any other key."""
    if not (key.startswith(QUEUE) and key.endswith(_SUFFIX)):
        raise UnsafeKey(f"refused batch key {key!r}: a batch is queue/<id>{_SUFFIX}")
    return check_name(key[len(QUEUE) : -len(_SUFFIX)])


def batch_id_from_key(key: str) -> str:
    """``queue/<id>.json`` (or any folder) -> ``<id>``; other names are kept whole."""
    name = key.rpartition("/")[2]
    return name[: -len(_SUFFIX)] if name.endswith(_SUFFIX) else name


class QueueKey(StrEnum):
    """What a key listed under ``queue/`` is."""

    BATCH = "batch"  # queue/<name>.json: delivered
    FOREIGN = "foreign"  # a key the store can address, but no batch: quarantined
    UNREADABLE = "unreadable"  # a key no store addresses: ignored, reported once


def queue_key_rule() -> str:
    return f"a batch is {QUEUE}<name>{_SUFFIX}, a plain name without '/' or control characters"


def classify_queue_key(key: str) -> QueueKey:
    """A key listed under ``queue/``: a batch, a stray object, or a key no store reads."""
    if key_problem(key) is not None or not key.isprintable():
        return QueueKey.UNREADABLE
    name = key.removeprefix(QUEUE)
    if name in (key, _SUFFIX) or "/" in name or not name.endswith(_SUFFIX):
        return QueueKey.FOREIGN
    if not is_safe_name(name[: -len(_SUFFIX)]):  # the store reads it; no batch has that id
        return QueueKey.FOREIGN
    return QueueKey.BATCH


def is_batch_key(key: str) -> bool:
    return classify_queue_key(key) is QueueKey.BATCH


def error_key(quarantined: str) -> str:
    """The error record beside a quarantined file."""
    return f"{quarantined}{_ERROR_SUFFIX}"


def is_error_key(key: str) -> bool:
    """True for the error record beside a quarantined file, not a file set aside."""
    return key.endswith(_ERROR_SUFFIX)


def foreign_quarantine_key(key: str) -> str:
    """Where a stray key from ``queue/`` is set aside: its path below ``queue/`` in one
    name (``queue/sub/x.json`` -> ``quarantine/sub%2Fx.json``), beside no batch's."""
    return f"{QUARANTINE}{quote(key.removeprefix(QUEUE), safe='')}"
