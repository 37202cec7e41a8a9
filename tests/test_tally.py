"""Counts of finished batches kept as they finish: `status` adds up without re-reading
every ledger, before and after gc, on a store that had no counts, across folds."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailspool.config import Settings
from mailspool.message import Message
from mailspool.ops import admin
from mailspool.ops.status import collect_status
from mailspool.producer import api
from mailspool.spool import tally
from mailspool.stores.file import FileStore
from tests.dashboard_common import deliver, queue
from tests.fixtures.smtp_server import SMTPSink


def test_finished_batches_are_counted_and_gc_takes_them_out(spool: Path, tmp_path: Path) -> None:
    queue(spool, "ann@example.com", "bob@example.com", "cy@example.com")
    deliver(spool, f"file://{tmp_path / 'outbox'}")
    store = FileStore(spool)
    status = collect_status(store)
    assert (status.sent, status.batches_done, status.pending) == (3, 3, 0)
    assert list(store.keys(tally.LOG))  # counted from the tally's records
    admin.collect_garbage(store, older_than=0, now=time.time() + 10)
    status = collect_status(store)
    assert (status.sent, status.batches_done, status.total) == (0, 0, 0)
    store.close()


def test_a_store_without_counts_is_counted_once_from_its_ledgers(
    spool: Path, tmp_path: Path
) -> None:
    queue(spool, "ann@example.com", "bob@example.com")
    deliver(spool, f"file://{tmp_path / 'outbox'}")
    store = FileStore(spool)
    for key in list(store.keys("tally/")):
        store.delete_log(key)  # as a version without counts left it
    assert collect_status(store).sent == 2
    assert store.exists(tally.TOTAL)
    queue(spool, "cy@example.com")
    deliver(spool, f"file://{tmp_path / 'outbox'}")
    assert collect_status(store).sent == 3
    store.close()


def test_closed_segments_are_folded_into_the_total(spool: Path, tmp_path: Path) -> None:
    queue(spool, "ann@example.com", "bob@example.com")
    deliver(spool, f"file://{tmp_path / 'outbox'}")
    store = FileStore(spool)
    assert collect_status(store).sent == 2
    later = time.time() + 3600
    assert collect_status(store, now=later).sent == 2
    assert list(store.keys(tally.LOG)) == []  # folded, then removed
    total = tally.Tally.decode(store.get(tally.TOTAL))
    assert (total.sent, total.done) == (2, 2)
    assert sum(sent for sent, _ in total.minutes.values()) == 2
    store.close()


def test_a_damaged_total_is_counted_again(spool: Path, tmp_path: Path) -> None:
    queue(spool, "ann@example.com")
    deliver(spool, f"file://{tmp_path / 'outbox'}")
    store = FileStore(spool)
    collect_status(store, now=time.time() + 3600)
    store.put(tally.TOTAL, b'{"version": 99}')
    assert collect_status(store).sent == 1
    store.close()


counts = st.integers(min_value=-(2**40), max_value=2**40)


@given(
    sent=counts,
    failed=counts,
    refused=counts,
    done=counts,
    through=st.text(alphabet="0123456789T", max_size=13),
    minutes=st.dictionaries(
        st.integers(min_value=1, max_value=2**31), st.lists(counts, min_size=2, max_size=2)
    ),
)
def test_the_total_survives_encoding(
    sent: int, failed: int, refused: int, done: int, through: str, minutes: dict[int, list[int]]
) -> None:
    total = tally.Tally(sent, failed, refused, done, through, minutes)
    assert tally.Tally.decode(total.encode()) == total


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_total_or_value_error(data: bytes) -> None:
    try:
        total = tally.Tally.decode(data)
    except ValueError:
        return
    assert isinstance(total.sent, int)


def test_refused_recipients_of_finished_batches_are_counted(
    spool: Path, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("gone@example.com")
    settings = Settings.load(store=f"file://{spool}")
    message = Message.build(to=["ann@example.com", "gone@example.com"], subject="Hi", text="Hi.")
    api.send_message(message, priority=False, settings=settings)
    deliver(spool, smtp_server)
    store = FileStore(spool)
    status = collect_status(store)
    assert (status.sent, status.refused_recipients, status.batches_done) == (1, 1, 1)
    for key in list(store.keys("tally/")):
        store.delete_log(key)
    assert collect_status(store).refused_recipients == 1  # the same, counted from the ledger
    store.close()
