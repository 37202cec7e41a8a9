"""The ledger's window: outcomes recorded while a write is under way do not wait for it,
up to ``window`` of them; ``flush`` makes every one durable."""

from __future__ import annotations

import threading

import pytest

from mailspool.errors import StoreError
from mailspool.spool import layout
from mailspool.spool.ledger import Ledger, read_entries
from mailspool.spool.records import LedgerEntry
from mailspool.stores.memory import MemoryStore


class SlowDisk(MemoryStore):
    """A real memory store whose appends wait until the test lets them go (a slow fsync),
    or fail (a full disk): timing and faults no real store produces on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.full = False

    def append(self, key: str, record: bytes) -> None:
        self.writing.set()
        self.gate.wait(30)
        if self.full:
            raise StoreError("no space left on device")
        super().append(key, record)


def sent(index: int) -> LedgerEntry:
    return LedgerEntry.sent(index, f"<{index}@test>", 1)


def test_outcomes_within_the_window_go_on_while_the_write_is_under_way() -> None:
    store = SlowDisk()
    ledger = Ledger(store, "b1", window=3)
    leader = threading.Thread(target=ledger.record, args=(sent(0),))
    leader.start()  # writes entry 0, and waits on the slow disk
    assert store.writing.wait(30)
    ledger.record(sent(1))
    ledger.record(sent(2))
    assert read_entries(store, "b1") == {}  # returned before anything was durable
    store.gate.set()
    leader.join(30)
    ledger.flush()
    assert sorted(read_entries(store, "b1")) == [0, 1, 2]


def test_without_a_window_a_record_returns_once_durable() -> None:
    store = MemoryStore()
    ledger = Ledger(store, "b1")
    for index in range(3):
        ledger.record(sent(index))
        assert sorted(read_entries(store, "b1")) == list(range(index + 1))


def test_many_threads_record_everything_once_flushed() -> None:
    store = MemoryStore()
    ledger = Ledger(store, "b1", window=4)
    threads = [
        threading.Thread(target=lambda n=n: [ledger.record(sent(n * 50 + i)) for i in range(50)])  # type: ignore[misc]
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ledger.flush()
    assert sorted(read_entries(store, "b1")) == list(range(400))


def test_a_failed_write_reaches_the_next_record_and_flush() -> None:
    store = SlowDisk()
    store.full = True
    store.gate.set()
    ledger = Ledger(store, "b1", window=8)
    with pytest.raises(StoreError, match="no space"):
        ledger.record(sent(0))  # no write under way: this thread writes, and fails
    with pytest.raises(StoreError, match="no space"):
        ledger.record(sent(1))
    with pytest.raises(StoreError, match="no space"):
        ledger.flush()


class Clock:
    """The time the ledger's commit interval is measured in, moved by the test: when a
    commit falls due is then a fact of the test, not of the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_commit_interval_writes_outcomes_together_once_it_has_passed() -> None:
    store = MemoryStore()
    clock = Clock()
    # An hour on the test's clock: the committer thread, which waits in real time, cannot
    # wake and write first however slowly this test runs.
    ledger = Ledger(store, "b1", interval=3600.0, clock=clock)
    for index in range(3):
        ledger.record(sent(index))  # returns at once: nothing durable yet
    assert read_entries(store, "b1") == {}
    clock.now = 3600.0
    ledger.record(sent(3))  # the interval has passed: one write for all four
    assert sorted(read_entries(store, "b1")) == [0, 1, 2, 3]
    assert len(store.read_log(layout.ledger_key("b1"))) == 1
    ledger.record(sent(4))
    ledger.flush()
    assert sorted(read_entries(store, "b1")) == [0, 1, 2, 3, 4]


def test_the_committer_writes_what_waits_when_no_more_outcomes_come() -> None:
    store = MemoryStore()
    ledger = Ledger(store, "b1", interval=0.05)
    ledger.record(sent(0))
    ledger.record(sent(1))
    deadline = threading.Event()
    for _ in range(600):  # no flush: the committer thread alone writes them
        if sorted(read_entries(store, "b1")) == [0, 1]:
            break
        deadline.wait(0.05)
    assert sorted(read_entries(store, "b1")) == [0, 1]


def test_with_an_interval_the_ledger_never_holds_the_recorder() -> None:
    """With a commit interval (S3) a sender thread must not wait at the window for a
    commit that is an hour away on the test's clock."""
    store = MemoryStore()
    ledger = Ledger(store, "b1", window=2, interval=3600.0, clock=Clock())
    recorder = threading.Thread(target=lambda: [ledger.record(sent(i)) for i in range(6)])
    recorder.start()
    recorder.join(timeout=30)
    assert not recorder.is_alive()
    assert read_entries(store, "b1") == {}  # nothing written yet: the interval holds
    ledger.flush()
    assert sorted(read_entries(store, "b1")) == list(range(6))
