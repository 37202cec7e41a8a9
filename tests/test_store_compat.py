"""Store files written by mailspool 0.1 are read, and written again, byte for byte.

``tests/data/store-v0.1`` is a file store as version 0.1 left it after a realistic run:

- batch A (shared cc, bcc, replyTo and headers; text and HTML; an inline attachment and
  a blob) split after 3 e-mails: 3 sent (one with a refused recipient), 2 carried on by
  the continuation ``A-p3``, still queued; A itself in ``done/``;
- batch B (plain text): 2 sent, 1 refused for good (550), 2 given up after transient
  answers (452); the last of them re-queued by ``failed retry``;
- batch C, queued and never delivered;
- two quarantined files: one not JSON, one with a wrong field in its second e-mail.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import InvalidBatch
from mailspool.ops import admin
from mailspool.ops.status import collect_status
from mailspool.spool import batch, layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import (
    FailedRecord,
    LedgerEntry,
    LedgerState,
    QuarantineError,
    decode_entries,
    encode_entries,
)
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain

GOLDEN = Path(__file__).parent / "data" / "store-v0.1"
A = "20261129T064934156764Z-ccdbfd2d"
B = "20261129T064934164714Z-0f466f42"
C = "20261129T064934167762Z-e60c1392"
RETRY = "20261129T064934654307Z-225049d0"
NOT_JSON = "20261129T064934171784Z-c0db47de"
WRONG_FIELD = "20261129T064934172328Z-5c0eabc1"
BLOB = "d71efa234e1f61e2094c81b337fddbe80d0854a2672bf43b39afe494c462a7ab"


def golden(key: str) -> bytes:
    return (GOLDEN / key).read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    """A copy of the golden store, so that reading (or delivering) changes nothing."""
    shutil.copytree(GOLDEN, tmp_path / "spool")
    return FileStore(tmp_path / "spool")


def test_every_golden_file_is_checked_here() -> None:
    """A file kind added to the golden store must be added to these tests too."""
    found = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()}
    assert found == {
        layout.queue_key(f"{A}-p3"),
        layout.queue_key(C),
        layout.queue_key(RETRY),
        layout.done_key(A),
        layout.done_key(B),
        layout.ledger_key(A),
        layout.ledger_key(B),
        layout.failed_key(A, 1, partial=True),
        layout.failed_key(B, 1),
        layout.failed_key(B, 2),
        layout.quarantine_key(layout.queue_key(NOT_JSON)),
        layout.quarantine_error_key(layout.queue_key(NOT_JSON)),
        layout.quarantine_key(layout.queue_key(WRONG_FIELD)),
        layout.quarantine_error_key(layout.queue_key(WRONG_FIELD)),
        layout.blob_key(BLOB),
    }


@pytest.mark.parametrize(
    "key",
    [
        layout.queue_key(f"{A}-p3"),
        layout.queue_key(C),
        layout.queue_key(RETRY),
        layout.done_key(A),
        layout.done_key(B),
    ],
)
def test_batch_files_decode_and_encode_to_the_same_bytes(key: str) -> None:
    data = golden(key)
    decoded = batch.decode(data, source=key)
    assert decoded.version == 1
    assert decoded.id == layout.batch_id_from_key(key)
    assert decoded.document().encode() == data
    blobs = {BLOB: golden(layout.blob_key(BLOB))}
    for index in range(len(decoded)):
        assert decoded.message(index, blobs.__getitem__).to


def test_the_producer_batch_keeps_every_extension() -> None:
    done = batch.decode(golden(layout.done_key(A)), source="A")
    assert done.meta["cc"] == ["Accounts <accounts@example.com>"]
    assert done.meta["bcc"] == ["archive@example.com"]
    assert done.meta["replyTo"] == ["help@example.com"]
    assert done.meta["headers"] == {
        "X-Campaign": "november",
        "List-Unsubscribe": "<mailto:u@example.com>",
    }
    message = done.message(1, {BLOB: golden(layout.blob_key(BLOB))}.__getitem__)
    assert message.text == "Invoice 1 attached."
    assert message.html == "<p>Invoice 1 attached.</p>"
    note, invoice = message.attachments
    assert (note.filename, note.content) == ("note.txt", "Grüße\n".encode())
    assert hashlib.sha256(invoice.content).hexdigest() == BLOB


def test_a_continuation_is_the_rest_of_its_batch_with_the_same_meta() -> None:
    first = batch.decode(golden(layout.done_key(A)), source="A")
    continuation = batch.decode(golden(layout.queue_key(f"{A}-p3")), source="A-p3")
    assert continuation.created_at == first.created_at
    assert continuation.meta == first.meta
    assert list(continuation.emails) == [first.raw_email(3), first.raw_email(4)]
    assert first.part(f"{A}-p3", [3, 4]).encode() == golden(layout.queue_key(f"{A}-p3"))


def test_ledger_records_decode_and_encode_to_the_same_bytes(store: FileStore) -> None:
    for batch_id in (A, B):
        for record in store.read_log(layout.ledger_key(batch_id)):
            entries = decode_entries(record)
            assert entries
            assert encode_entries(entries) == record


def test_ledger_entries_keep_their_fields(store: FileStore) -> None:
    a = read_entries(store, A)
    assert {i: e.state for i, e in a.items()} == {
        0: LedgerState.SENT,
        1: LedgerState.SENT,
        2: LedgerState.SENT,
        3: LedgerState.CONTINUED,
        4: LedgerState.CONTINUED,
    }
    assert a[3] == LedgerEntry.continued(3, f"{A}-p3")
    assert a[0] == LedgerEntry.sent(0, f"<{A}.0@example.com>", 1)
    assert a[1].refused == {
        "nobody@example.com": "550 5.1.1 <nobody@example.com>: Recipient address rejected: "
        "User unknown"
    }
    b = read_entries(store, B)
    assert [b[i].state for i in range(5)] == ["sent", "failed", "failed", "failed", "sent"]
    assert b[1] == LedgerEntry.failed(
        1, "gone@example.com: 550 5.1.1 <gone@example.com>: User unknown", 1
    )
    assert (b[2].attempts, b[2].reason) == (
        2,
        "gave up after 2 attempts: busy1@example.com: 452 4.2.2 <busy1@example.com>: Mailbox full",
    )


@pytest.mark.parametrize(
    "key", [layout.failed_key(A, 1, partial=True), layout.failed_key(B, 1), layout.failed_key(B, 2)]
)
def test_failed_records_decode_and_encode_to_the_same_bytes(key: str) -> None:
    data = golden(key)
    record = FailedRecord.decode(data, source=key)
    assert record.encode() == data
    assert layout.failed_key(record.batch, record.index, partial=record.partial) == key


def test_failed_records_keep_their_fields(store: FileStore) -> None:
    failed = {item.id: item for item in admin.list_failed(store)}
    partial = failed[f"{A}.1.refused"].record
    assert (partial.partial, partial.retryable, partial.attempts) == (True, False, 1)
    assert partial.reason == "recipients refused"
    assert partial.recipients == ["nobody@example.com"]
    assert partial.meta["cc"] == ["Accounts <accounts@example.com>"]
    refused = failed[f"{B}.1"].record
    assert (refused.retryable, refused.attempts, refused.recipients) == (
        False,
        1,
        ["gone@example.com"],
    )
    assert refused.refused is None
    assert refused.failed_at == "2026-11-29T06:49:34.472106Z"
    gave_up = failed[f"{B}.2"].record
    assert (gave_up.retryable, gave_up.attempts) == (True, 2)


@pytest.mark.parametrize(
    ("name", "field", "index"), [(NOT_JSON, None, None), (WRONG_FIELD, "subject", 1)]
)
def test_quarantine_errors_decode_and_encode_to_the_same_bytes(
    name: str, field: str | None, index: int | None
) -> None:
    queued = layout.queue_key(name)
    data = golden(layout.quarantine_error_key(queued))
    error = QuarantineError.decode(data, source=layout.quarantine_error_key(queued))
    assert error.encode() == data
    assert (error.file, error.field, error.index) == (queued, field, index)
    with pytest.raises(InvalidBatch) as raised:
        batch.decode(golden(layout.quarantine_key(queued)), source=queued)
    assert str(raised.value) == error.error
    assert (raised.value.reason, raised.value.field, raised.value.index) == (
        error.reason,
        field,
        index,
    )


def test_status_counts_the_old_store(store: FileStore) -> None:
    status = collect_status(store, now=0)
    assert status.as_dict() | {"oldest_pending_age": None} == {
        "pending": 4,  # A-p3: 2, C: 1, the retry: 1
        "sent": 5,
        "failed": 2,  # the partial failure counts as sent
        "quarantined": 3,  # 2 e-mails, and 1 for the file that is not JSON
        "batches_pending": 3,
        "batches_done": 2,
        "oldest_pending_age": None,
        "refused_recipients": 1,
        "scheduled": 0,  # 0.1 had no scheduled/ nor cancelled/
        "cancelled": 0,
        "total": 14,
    }


def test_the_old_queue_is_delivered(store: FileStore) -> None:
    """The files were written on 2026-11-29: a queue lifetime of ten years keeps this
    test about the format, not about how long ago that was."""
    transport = MemoryTransport()
    worker = Worker(store, transport, options=WorkerOptions(queue_lifetime=10 * 365 * 86400.0))
    report = drain(worker, fallback_base=str(store.root.parent / "fallback"))
    worker.close()
    assert (report.sent, report.failed) == (4, 0)
    sent = Counter(r for message in transport.outbox for r in message.envelope_recipients)
    assert sent["busy2@example.com"] == 1
    assert sent["archive@example.com"] == 3  # the bcc of A-p3 (2 e-mails) and C
    status = collect_status(store)
    assert (status.pending, status.sent, status.total) == (0, 9, 14)
