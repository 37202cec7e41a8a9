"""A crash between the two steps of the move to ``done/`` (file store: the link and the
unlink; S3: the copy and the delete) leaves a finished batch in ``queue/`` and ``done/``.
It counts once, is never sent again, and ``gc`` never makes it sendable again: checked
before and after ``gc``, on the file store and on S3 (moto)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import boto3
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.ops.admin import collect_garbage
from mailspool.ops.status import collect_status
from mailspool.spool import layout
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.stores.s3 import S3Store
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain
from tests.fixtures.moto_server import MotoServer

BUCKET = "mailspool-leftovers"
LATER = 3600.0  # gc looks from an hour later, so every finished batch is old enough


def hand_off(store: Store, count: int) -> str:
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for i in range(count):
            mailspool.send_mail(f"u{i}@example.com", "s", "m")
    [key] = scope.keys
    return key


def drained(store: Store, transport: MemoryTransport) -> int:
    """E-mails one drain sent."""
    before = len(transport.outbox)
    with closing(Worker(store, transport, options=WorkerOptions(concurrency=2))) as worker:
        drain(worker)
    return len(transport.outbox) - before


def check_leftover_is_harmless(store: Store, key: str, transport: MemoryTransport) -> None:
    batch_id = layout.batch_id_from_key(key)
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


def test_a_file_store_batch_linked_but_not_unlinked(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    key = hand_off(store, 5)
    transport = MemoryTransport()
    assert drained(store, transport) == 5
    done = store.root / layout.done_key(layout.batch_id_from_key(key))
    os.link(done, store.root / key)  # the state between the link and the unlink
    check_leftover_is_harmless(store, key, transport)


@pytest.fixture
def s3_store(aws: MotoServer) -> Iterator[S3Store]:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with closing(S3Store(bucket=BUCKET, prefix="spool")) as store:
        yield store


def test_an_s3_batch_copied_but_not_deleted(s3_store: S3Store) -> None:
    key = hand_off(s3_store, 5)
    transport = MemoryTransport()
    assert drained(s3_store, transport) == 5
    client: Any = boto3.client("s3")
    done = f"spool/{layout.done_key(layout.batch_id_from_key(key))}"
    client.copy_object(  # the state between the copy and the delete
        Bucket=BUCKET, Key=f"spool/{key}", CopySource={"Bucket": BUCKET, "Key": done}
    )
    check_leftover_is_harmless(s3_store, key, transport)
