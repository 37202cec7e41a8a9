"""Hostile names and links in the store: ids with ``/``, ``..``, NUL or control
characters are refused at every key the layout draws, and the file store reads through
no symbolic link (one placed in ``queue/`` is quarantined unread, with a reason)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import ObjectRefused, UnsafeKey
from mailspool.spool import layout
from mailspool.spool.keys import is_safe_name
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain, pending_batches
from tests.test_batch_format import ARTICLE_FILE

HOSTILE = [
    "../etc/passwd",
    "a/b",
    "a\\b",
    "..",
    "x..y",
    "nul\0",
    "line\nbreak",
    "bell\x07",
    "\x85",
    "\u2028",
    "",
    ".leases",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_every_key_refuses_a_hostile_id(name: str) -> None:
    for draw in (layout.queue_key, layout.done_key, layout.ledger_key):
        with pytest.raises(UnsafeKey, match="refused"):
            draw(name)
    if "/" not in name:  # a quarantine key is drawn from the batch key's last segment
        with pytest.raises(UnsafeKey):
            layout.quarantine_key(f"queue/{name}")
    with pytest.raises(UnsafeKey):
        layout.failed_key(name, 0)
    with pytest.raises(UnsafeKey):
        layout.blob_key(name)


def test_a_continuation_id_of_a_safe_id_is_safe() -> None:
    batch_id = layout.new_batch_id()
    assert layout.queue_key(f"{batch_id}-p25") == f"queue/{batch_id}-p25.json"
    assert layout.queued_batch_id(f"queue/{batch_id}.json") == batch_id


def test_a_blob_digest_must_be_64_lowercase_hex_digits() -> None:
    assert layout.blob_key("a" * 64) == f"blobs/{'a' * 64}"
    for digest in ("A" * 64, "a" * 63, "../" + "a" * 61):
        with pytest.raises(UnsafeKey):
            layout.blob_key(digest)


@given(st.text(max_size=40))
def test_a_name_is_safe_only_without_slashes_dot_dot_or_controls(name: str) -> None:
    bad = (
        not name
        or name.startswith(".")
        or ".." in name
        or any(c in "/\\\u2028\u2029" or ord(c) < 32 or 127 <= ord(c) < 160 for c in name)
    )
    assert is_safe_name(name) is not bad


def test_the_worker_refuses_a_nested_queue_key_and_touches_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    store.put("queue/sub/x.json", ARTICLE_FILE)
    transport = MemoryTransport()
    report = Worker(store, transport).deliver("queue/sub/x.json")
    assert report.status == "refused"
    assert transport.outbox == []
    assert store.get("queue/sub/x.json") == ARTICLE_FILE
    assert pending_batches(store) == []  # not tried again at every poll


def test_a_link_in_queue_is_quarantined_unread_with_a_reason(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_bytes(ARTICLE_FILE)  # a valid batch: sending it would be the harm
    store = FileStore(tmp_path / "spool")
    store.put("queue/real.json", ARTICLE_FILE)
    (store.root / "queue" / "evil.json").symlink_to(outside)
    transport = MemoryTransport()
    worker = Worker(store, transport, options=WorkerOptions(concurrency=2))

    report = drain(worker)

    statuses = {r.key: r.status for r in report.batches}
    assert statuses == {"queue/evil.json": "quarantined", "queue/real.json": "finished"}
    assert len(transport.outbox) == 2  # the real batch's two e-mails only
    moved = store.root / "quarantine" / "evil.json"
    assert moved.is_symlink()
    assert outside.read_bytes() == ARTICLE_FILE
    error = orjson.loads(store.get("quarantine/evil.json.error.json"))
    assert "symbolic link" in error["reason"]


def test_the_file_store_reads_through_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_bytes(b"secret")
    store = FileStore(tmp_path / "spool")
    store.put("done/keep.json", b"ok")
    (store.root / "blobs").symlink_to(outside)
    (store.root / "done" / "link.json").symlink_to(outside / "x.json")
    with pytest.raises(ObjectRefused, match="symbolic link"):
        store.get("blobs/x.json")
    with pytest.raises(ObjectRefused, match="symbolic link"):
        store.get("done/link.json")
    assert store.get("done/keep.json") == b"ok"
