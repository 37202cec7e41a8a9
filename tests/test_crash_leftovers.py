"""A crash between the two steps of the move to ``done/`` (S3: the copy and the delete;
an older file store: the link and the unlink) leaves a finished batch in ``queue/`` and
``done/``.
It counts once, is never sent again, and ``gc`` never makes it sendable again: checked
before and after ``gc``, on the file store and on S3 (moto)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import boto3
import pytest

from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import StoreError
from mailspool.ops.admin import collect_garbage
from mailspool.ops.status import collect_status
from mailspool.spool import layout
from mailspool.spool.quarantine import quarantine
from mailspool.spool.records import QuarantineError, timestamp
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.stores.s3 import S3Store
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain
from tests.fixtures.moto_server import MotoServer
from tests.test_worker import queue

BUCKET = "mailspool-leftovers"
LATER = 3600.0  # gc looks from an hour later, so every finished batch is old enough


class CrashingMove(Exception):
    """The process dies between the two steps of a move."""


def crash_after_copy(store: Store) -> None:
    """Make ``store.move`` copy to the destination, then die before removing the source:
    a stub for a crash at that exact instant, which no real server can be asked for."""

    def move(source: str, destination: str) -> bool:
        store.put(destination, store.get(source))
        raise CrashingMove(source)

    store.move = move  # type: ignore[method-assign]


def drained(store: Store, transport: MemoryTransport) -> int:
    """E-mails one drain sent."""
    before = len(transport.outbox)
    with closing(Worker(store, transport, options=WorkerOptions(concurrency=2))) as worker:
        drain(worker)
    return len(transport.outbox) - before


def check_leftover_is_harmless(store: Store, key: str, transport: MemoryTransport) -> None:
    batch_id = layout.batch_id_from_key(key)
    assert store.exists(key)
    assert store.exists(layout.done_key(batch_id))
    status = collect_status(store)
    assert (status.pending, status.sent, status.total) == (0, 5, 5)  # once, not twice
    assert collect_garbage(store, older_than=0, now=time.time() + LATER) == []
    assert store.read_log(layout.ledger_key(batch_id)) != []  # the ledger is kept
    assert drained(store, transport) == 0
    assert not store.exists(key)  # the worker finished the interrupted move
    assert store.exists(layout.done_key(batch_id))
    assert collect_status(store).sent == 5
    assert collect_garbage(store, older_than=0, now=time.time() + LATER) == [
        layout.done_key(batch_id)
    ]
    assert drained(store, transport) == 0
    assert len(transport.outbox) == 5


def test_a_file_store_batch_copied_but_not_removed(tmp_path: Path) -> None:
    crashing = FileStore(tmp_path / "spool")
    key = queue(crashing, 5)
    transport = MemoryTransport()
    crash_after_copy(crashing)
    assert drained(crashing, transport) == 5  # sent and recorded, then the crash
    check_leftover_is_harmless(FileStore(tmp_path / "spool"), key, transport)


@pytest.fixture
def s3_store(aws: MotoServer) -> Iterator[S3Store]:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with closing(S3Store(bucket=BUCKET, prefix="spool")) as store:
        yield store


def test_an_s3_batch_copied_but_not_deleted(s3_store: S3Store) -> None:
    crashing = S3Store(bucket=BUCKET, prefix="spool")
    key = queue(crashing, 5)
    transport = MemoryTransport()
    crash_after_copy(crashing)
    assert drained(crashing, transport) == 5
    check_leftover_is_harmless(s3_store, key, transport)


def test_every_quarantine_writes_the_error_before_it_removes_the_file() -> None:
    """The one quarantine function, for a file read (copied) and a file left unread
    (moved): a store that fails at the removal leaves the original with its error
    already beside the copy's key, never the copy without its error."""

    class FailsToRemove(MemoryStore):
        """A stand-in for a store that dies between two writes: no real store fails on
        command at exactly that point."""

        def delete(self, key: str) -> None:
            raise StoreError("the store went away")

        def move(self, source: str, target: str) -> None:
            raise StoreError("the store went away")

    for data in (b"{not json", None):
        store = FailsToRemove()
        store.put("queue/b.json", b"{not json")
        error = QuarantineError("queue/b.json", "bad", "bad", None, None, timestamp())
        with pytest.raises(StoreError):
            quarantine(store, "queue/b.json", error, data=data)
        assert store.exists("queue/b.json")
        assert store.exists(layout.quarantine_error_key("queue/b.json"))
